"""One description per config: the C tables (``_native.config_fields``), the Python config classes,
the C checks and the bundle JSON schema agree field by field on defaults, enum names and ranges."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from edge_speech import Recognizer, _native, decoding, features, vad
from edge_speech._config_tables import native_fields

SCHEMA = json.loads((Path(features.__file__).parent / "schema" / "manifest.schema.json").read_text())
INT_LIMITS = (-(2**31), 2**31 - 1)  # a C int's own limits: no bound of the field's
CONFIGS = ("frontend", "vad", "beam")


def python_fields(cls):
    return {f.name: f for f in dataclasses.fields(cls)}


def rows(config):
    return list(native_fields(config).values())


# -- defaults ---------------------------------------------------------------------------------


def test_every_front_end_field_has_one_default_in_c_python_and_the_schema():
    c_fields = native_fields("frontend")
    py_fields = python_fields(features.FeatureConfig)
    assert set(c_fields) - {"sample_rate_hz"} == set(py_fields) - {"cmvn_mean", "cmvn_std"}
    config = features.FeatureConfig()
    for name in py_fields:
        if name in c_fields:
            assert getattr(config, name) == c_fields[name].default, name
    schema = SCHEMA["properties"]["features"]["properties"]
    for name, field in c_fields.items():
        if name in schema:
            assert schema[name]["default"] == field.default, name
    assert schema["cmvn_mean"]["default"] is None and features.FeatureConfig().cmvn_mean is None


def test_the_c_front_end_default_is_feature_config_default():
    # What es_frontend_config_default() computes equals what FeatureConfig() computes.
    samples = np.sin(np.arange(8000) * 0.05).astype(np.float32)
    config = features.FeatureConfig()
    ours = features.compute(samples, 16000, config)
    native_default = _native.FrontEnd({"sample_rate_hz": 16000.0})
    theirs = np.frombuffer(native_default.accept_and_finish(samples), np.float32).reshape(-1, native_default.dim)
    np.testing.assert_array_equal(ours, theirs)
    assert native_default.dim == config.dim == 80


def test_every_energy_vad_field_has_one_default_in_c_and_python():
    c_fields = native_fields("vad")
    assert set(c_fields) - {"sample_rate_hz"} == set(python_fields(vad.EnergyVadConfig))
    config = vad.EnergyVadConfig()
    for name in python_fields(vad.EnergyVadConfig):
        assert getattr(config, name) == c_fields[name].default, name


def test_every_beam_field_has_one_default_in_c_python_the_recognizer_and_the_schema():
    c_fields = native_fields("beam")
    config = decoding.BeamConfig()
    shared = set(c_fields) & set(python_fields(decoding.BeamConfig))
    assert shared == {"beam_width", "top_k", "lm_weight", "word_bonus", "oov_penalty"}
    for name in shared:
        assert getattr(config, name) == c_fields[name].default, name
    # C holds the two probabilities as natural logs.
    assert c_fields["token_min_log_prob"].default == math.log(config.token_min_prob)
    assert c_fields["blank_skip_log_prob"].default == math.log(config.blank_skip_prob)
    assert config._native() == {name: c_fields[name].default for name in c_fields}
    decoder = SCHEMA["properties"]["decoder"]["properties"]
    assert decoder["beam"]["default"] == config.beam_width == 8  # a Recognizer's beam when the bundle names none
    assert decoder["lm_weight"]["default"] == config.lm_weight
    assert decoder["word_bonus"]["default"] == config.word_bonus
    assert decoding.CTCDecoder(["<b>", "a"]).config.beam_width == config.beam_width


def test_a_recognizer_uses_the_bundle_beam_or_else_the_beam_config_default(tmp_path):
    from test_bundle_backends import make_bundle

    plain = Recognizer.from_bundle(make_bundle(tmp_path / "plain"), threads=1)
    assert plain.beam == decoding.BeamConfig().beam_width == 8
    assert plain._decoder.config.beam_width == 8
    named = Recognizer.from_bundle(make_bundle(tmp_path / "named", decoder={"beam": 12}), threads=1)
    assert named.beam == 12
    assert Recognizer.from_bundle(tmp_path / "named", threads=1, beam=3).beam == 3


# -- enums ------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", [f for f in rows("frontend") if f.type == "enum"], ids=lambda f: f.name)
def test_front_end_choices_are_the_c_enum_names(field):
    schema = SCHEMA["properties"]["features"]["properties"][field.name]
    assert tuple(schema["enum"]) == field.enum_names
    base = features.FeatureConfig()
    for name in field.enum_names:
        try:
            base.replace(**{field.name: name})
        except ValueError as err:  # another field's rule (cmvn="global" needs statistics), not the choice
            assert "must be one of" not in str(err)
    with pytest.raises(ValueError, match=f"{field.name} must be one of"):
        base.replace(**{field.name: "no-such-choice"})
    with pytest.raises(ValueError, match="no value"):
        _native.check_config({field.name: "no-such-choice"})
    for value, name in enumerate(field.enum_names):  # the binding takes a name or its C value alike
        by_name, by_value = dict(base._native(16000)), dict(base._native(16000))
        by_name[field.name], by_value[field.name] = name, value
        outcomes = []
        for d in (by_name, by_value):
            try:
                _native.check_config(d)
                outcomes.append(None)
            except ValueError as err:
                outcomes.append(str(err))
        assert outcomes[0] == outcomes[1]


# -- ranges -----------------------------------------------------------------------------------

# Settings under which a field counts (C checks some fields only when they are used).
CONTEXT = {"cmvn_window_frames": {"cmvn": "sliding"}}


def outside(field):
    """Values just outside the field's range (one per finite bound, or an infinite one that is excluded)."""
    step = 1 if field.type in ("int", "u64") else None
    values = []
    for bound, direction, exclusive in ((field.min, -1, field.min_exclusive), (field.max, 1, field.max_exclusive)):
        if field.type == "int" and bound in INT_LIMITS:
            continue
        if math.isinf(bound):
            if exclusive and field.type == "float":
                values.append(bound)
            continue
        if exclusive:
            values.append(int(bound) if step else bound)
        else:
            values.append(int(bound) + direction * step if step else bound + direction * max(abs(bound), 1.0) * 1e-5)
    return values


def inside(field):
    """The finite bounds the range includes."""
    return [
        int(b) if field.type in ("int", "u64") else b
        for b, exclusive in ((field.min, field.min_exclusive), (field.max, field.max_exclusive))
        if not exclusive
        and not math.isinf(b)
        and not (field.type == "int" and b in INT_LIMITS)
        and not (field.type == "u64" and b > 2**63)
    ]


NUMERIC = [f for f in rows("frontend") if f.type in ("int", "float", "u64") and f.name != "sample_rate_hz"]


@pytest.mark.parametrize("field", NUMERIC, ids=lambda f: f.name)
def test_front_end_ranges_agree_in_python_c_and_the_schema(field):
    base = features.FeatureConfig().replace(**CONTEXT.get(field.name, {}))
    for value in outside(field):
        with pytest.raises(ValueError, match=field.name):
            base.replace(**{field.name: value})
        if field.type != "u64":  # the binding refuses a u64 out of range before the check
            native = {**base._native(16000), field.name: value}
            with pytest.raises(ValueError):
                _native.check_config(native)
    for value in inside(field):
        config = base.replace(**{field.name: value})
        if field.name not in ("fft_size",):  # 65536 at 25 ms is fine; the check is about the rate
            config.check(16000)
    schema = SCHEMA["properties"]["features"]["properties"][field.name]
    assert schema_range(schema) == c_range(field)


def schema_range(schema):
    low = schema.get("minimum", schema.get("exclusiveMinimum", -math.inf))
    high = schema.get("maximum", schema.get("exclusiveMaximum", math.inf))
    return low, "exclusiveMinimum" in schema, high, "exclusiveMaximum" in schema


def c_range(field):
    low, high = field.min, field.max
    if field.type == "int" and low in INT_LIMITS:
        low = -math.inf
    if field.type == "int" and high in INT_LIMITS:
        high = math.inf
    return (low, field.min_exclusive and not math.isinf(low), high, field.max_exclusive and not math.isinf(high))


@pytest.mark.parametrize("field", [f for f in rows("vad") if f.name != "sample_rate_hz"], ids=lambda f: f.name)
def test_energy_vad_ranges_agree_in_python_and_c(field):
    for value in outside(field):
        with pytest.raises(ValueError, match=field.name):
            vad.EnergyVadConfig(**{field.name: value})
        with pytest.raises(ValueError):
            _native.EnergyVad(**{field.name: value})
    for value in inside(field):
        if field.name == "frame_ms":  # a 1 s frame needs a floor window of at least 1 s
            vad.EnergyVadConfig(frame_ms=value, floor_window_ms=max(1500.0, value)).create(16000)
        else:
            vad.EnergyVadConfig(**{field.name: value}).create(16000)


def test_the_native_tables_are_self_consistent():
    for config in CONFIGS:
        for field in rows(config):
            if field.type == "enum":
                assert field.min == 0 and field.max == len(field.enum_names) - 1
                assert field.default in field.enum_names
            elif field.type == "bool":
                assert isinstance(field.default, bool)
            else:
                assert field.in_range(field.default), (config, field.name)


BEAM_TOKENS = ["<b>", "a", "b"]


@pytest.mark.parametrize("field", rows("beam"), ids=lambda f: f.name)
def test_beam_ranges_agree_in_python_and_c(field):
    for value in outside(field):
        with pytest.raises(ValueError):
            _native.CTCBeam(BEAM_TOKENS, 0, 0, {field.name: value})
        if field.name in python_fields(decoding.BeamConfig):
            with pytest.raises(ValueError, match=field.name):
                decoding.BeamConfig(**{field.name: value})
    for value in inside(field):
        _native.CTCBeam(BEAM_TOKENS, 0, 0, {field.name: value})
        if field.name in python_fields(decoding.BeamConfig):
            decoding.BeamConfig(**{field.name: value})
    # The probabilities' Python ranges lie inside C's ranges of their logs.
    c_fields = native_fields("beam")
    assert c_fields["token_min_log_prob"].in_range(-math.inf)  # token_min_prob 0: no threshold
    assert c_fields["token_min_log_prob"].in_range(math.log(0.999999))
    assert c_fields["blank_skip_log_prob"].in_range(math.inf)  # blank_skip_prob None: never skip
    assert c_fields["blank_skip_log_prob"].in_range(math.log(1e-30)) and c_fields["blank_skip_log_prob"].in_range(0.0)


def test_config_fields_names_each_config():
    for config in CONFIGS:
        names = [row["name"] for row in _native.config_fields(config)]
        assert len(names) == len(set(names))
    with pytest.raises(ValueError, match="unknown config"):
        _native.config_fields("decoder")
    with pytest.raises(ValueError, match="unknown front end option"):
        _native.check_config({"num_mel_bin": 80})
    with pytest.raises(ValueError, match="unknown beam search option"):
        _native.CTCBeam(BEAM_TOKENS, 0, 0, {"beam": 4})
