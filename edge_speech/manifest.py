"""The bundle manifest: its schema and validation.

``manifest.json`` records everything the runtime needs to reproduce the conditions a model was
trained and verified under: the feature config (or waveform input), tokens, frame rate, input
layout, quantization, target and provenance, the decoder's defaults (optionally a word n-gram LM
shipped in the bundle), plus the files' sha256 checksums. The format is described by
``edge_speech/schema/manifest.schema.json``. Constructing a :class:`Manifest` (directly or with
:meth:`Manifest.from_dict`) validates it and raises :class:`BundleError` saying what is wrong;
reading bundles is :mod:`edge_speech.bundle`, writing them the converter's
:mod:`edge_speech.converters.bundle_writer`.

Validation, and why it is done twice: :meth:`Manifest.from_dict` validates the JSON against the
schema with ``jsonschema`` when it is importable, and the error names the JSON path and the
schema's complaint (``manifest.json: input.stream_context_frames: 1000000000 is greater than the
maximum of 4096``). ``jsonschema`` is not a base dependency: it needs ``rpds-py``, a Rust
extension with no wheels for armv6l or musl armv7l (manylinux armv7l/aarch64 only), and importing
it and building the validator takes 0.2-0.3 s on a desktop x86, several times that on a small
board (it is done once, on the first manifest). So the dataclasses below carry
their own hand-written checks, which run with or without ``jsonschema``; the bounds on every
integer that sizes work or memory (frame counts, contexts, state shapes, token counts) are read
from the schema itself, and ``tests/test_manifest_schema.py`` runs a set of bad manifests through
both and requires a refusal from each.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import json
import math
import numbers
from typing import Any, Callable, Mapping, Optional, Tuple

from edge_speech.features import FeatureConfig

__all__ = [
    "BundleError",
    "DECODER_KEYS",
    "INPUT_KINDS",
    "InputSpec",
    "MANIFEST_NAME",
    "METADATA_KEY",
    "MODEL_FORMATS",
    "MODEL_KINDS",
    "Manifest",
    "SCHEMA_VERSION",
    "StateTensor",
    "check_decoder_defaults",
]


# 2 added waveform input, 3 recurrent state carried across chunks (input.state); a manifest is
# written with the lowest version that describes it, so bundles without them read in older runtimes.
SCHEMA_VERSION = 3
METADATA_KEY = "edge_speech.manifest"
MANIFEST_NAME = "manifest.json"
MODEL_KINDS = ("ctc", "classifier")
MODEL_FORMATS = {".onnx": "onnx", ".tflite": "tflite"}
INPUT_KINDS = ("features", "waveform")
# Manifest keys whose value must be a JSON object.
OBJECT_KEYS = (
    "models",
    "input",
    "format_inputs",
    "output",
    "quantization",
    "files",
    "provenance",
    "verification",
    "decoder",
    "features",
)
SCHEMA: Mapping[str, Any] = json.loads(
    importlib.resources.files("edge_speech").joinpath("schema").joinpath("manifest.schema.json").read_text("utf-8")
)
_TOP_FIELDS: Mapping[str, Any] = SCHEMA["properties"]
_INPUT_FIELDS: Mapping[str, Any] = _TOP_FIELDS["input"]["properties"]
_STATE_FIELDS: Mapping[str, Any] = _INPUT_FIELDS["state"]["items"]["properties"]
# A state tensor is allocated and copied every chunk; the schema bounds each dimension, this the whole.
MAX_STATE_ELEMENTS = 1 << 24
# jsonschema quotes the offending value; a huge one would flood the message.
_MAX_COMPLAINT_CHARS = 300
DECODER_KEYS = (
    "lm",
    "lm_weight",
    "word_bonus",
    "beam",
    "lexicon",
    "grammar_threshold",
    "grammar_token_bonus",
    "grammar_min_evidence",
)


def _spec_dict(spec: "InputSpec") -> dict:
    """The spec as manifest JSON; clip_frames and max_frames only where set, so other manifests
    read in older runtimes."""
    data = dataclasses.asdict(spec)
    for optional in ("clip_frames", "max_frames", "chunk_range_name"):
        if data[optional] is None:
            del data[optional]
    if not spec.state:
        del data["state"]
    else:
        data["state"] = [{"input": s.input, "output": s.output, "shape": list(s.shape)} for s in spec.state]
    return data


@dataclasses.dataclass(frozen=True)
class StateTensor:
    """One recurrent state tensor of a stateful model (see :attr:`InputSpec.state`): the model
    takes it as input ``input`` and returns its value after the chunk as output ``output``;
    ``shape`` is fixed (e.g. ``[layers * directions, 1, hidden]`` for a GRU's h); the first
    chunk starts from zeros."""

    input: str
    output: str
    shape: Tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.input, str) or not isinstance(self.output, str) or not self.input or not self.output:
            raise BundleError(f"input state tensors need input and output names, got {self.input!r}, {self.output!r}")
        shape = tuple(self.shape) if isinstance(self.shape, (list, tuple)) else None
        if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
            raise BundleError(f"input state {self.input!r}: shape must be a list of positive ints, got {self.shape!r}")
        _check_length(shape, f"input state {self.input!r}: shape", _STATE_FIELDS["shape"])
        for i, size in enumerate(shape):
            _check_integer(size, f"input state {self.input!r}: shape[{i}]", _STATE_FIELDS["shape"]["items"])
        if math.prod(shape) > MAX_STATE_ELEMENTS:
            raise BundleError(
                f"input state {self.input!r}: shape {list(shape)} has {math.prod(shape)} elements, "
                f"more than the maximum of {MAX_STATE_ELEMENTS}"
            )
        object.__setattr__(self, "shape", shape)

    @classmethod
    def from_any(cls, item: Any) -> "StateTensor":
        if isinstance(item, StateTensor):
            return item
        if not isinstance(item, Mapping) or set(item) != {"input", "output", "shape"}:
            raise BundleError(f"input state entries are objects with input, output and shape, got {item!r}")
        return cls(input=item["input"], output=item["output"], shape=item["shape"])


class BundleError(ValueError):
    """A bundle or model file that cannot be used, with the reason."""


def _check_integer(value: Any, where: str, field: Mapping[str, Any]) -> None:
    """Refuses a non-integer or a value past the schema field's ``maximum``, in jsonschema's words
    (the dataclasses' own checks give the minimums, with messages older than the schema's)."""
    if value is None and "null" in field.get("type", ()):
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise BundleError(f"{where}: {value!r} is not of type 'integer'")
    if "maximum" in field and value > field["maximum"]:
        raise BundleError(f"{where}: {value!r} is greater than the maximum of {field['maximum']!r}")


def _check_length(items: Any, where: str, field: Mapping[str, Any]) -> None:
    if "maxItems" in field and len(items) > field["maxItems"]:
        raise BundleError(f"{where}: {len(items)} items, more than the maximum of {field['maxItems']}")


@functools.lru_cache(maxsize=None)
def _schema_validator() -> Optional[Callable[[Any], Any]]:
    """``iter_errors`` of a jsonschema validator for :data:`SCHEMA`, or None without jsonschema."""
    try:
        import jsonschema
    except ImportError:
        return None
    validator_class = jsonschema.validators.validator_for(SCHEMA)
    return validator_class(SCHEMA).iter_errors


def schema_complaint(data: Any) -> Optional[str]:
    """The schema's complaint about manifest JSON ``data``, prefixed with its JSON path
    (``input.chunk_frames: 0 is less than the minimum of 1``); None when the data is valid or
    jsonschema is not installed."""
    iter_errors = _schema_validator()
    if iter_errors is None:
        return None
    import jsonschema

    error = jsonschema.exceptions.best_match(iter_errors(data))
    if error is None:
        return None
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
    message = error.message
    if len(message) > _MAX_COMPLAINT_CHARS:
        message = message[: _MAX_COMPLAINT_CHARS - 1] + "…"
    return f"{where.lstrip('.')}: {message}" if where else message


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """How the model's input is made and fed.

    ``kind``: ``"features"`` (the manifest's feature config computes them) or ``"waveform"``:
    the model takes the samples themselves, [1, samples] float32 at the bundle's rate (wav2vec2
    style; the manifest's ``subsampling_factor`` is then samples per output frame), zero-mean
    unit-variance normalised per utterance when ``normalize`` is set (Hugging Face's
    ``do_normalize``). ``mask_name`` names an attention-mask input (ones, shaped like the
    waveform) when the export has one.

    ``layout``: ``"time_major"`` feeds [1, frames, dim], ``"channel_major"`` feeds [1, dim, frames].
    Fixed-shape models (``chunk_frames`` set) see windows of ``left_context_frames +
    chunk_frames + right_context_frames`` input frames; the runtime keeps the outputs of the
    middle part, so chunked output equals a whole-utterance run for models whose receptive field
    fits in the context.
    """

    name: str = "features"
    layout: str = "time_major"
    # A second input taking the frame count (NeMo/ESPnet exports), or the sample count of a waveform
    # model's fixed TFLite windows (converters.export_tflite_waveform).
    length_name: Optional[str] = None
    kind: str = "features"
    normalize: bool = False
    mask_name: Optional[str] = None
    chunk_frames: Optional[int] = None
    left_context_frames: int = 0
    right_context_frames: int = 0
    # Dynamic models: input frames of context each side that streaming needs to equal offline
    # (the receptive field); None lets the stream use its defaults.
    stream_context_frames: Optional[int] = None
    # Classifiers: the clip length in feature frames the model was trained on; the runtime fits
    # every input to it (edge_speech.classifier.fit_clip).
    clip_frames: Optional[int] = None
    # Dynamic models with a longest input (Whisper's 30-s position table): longer utterances run
    # in overlapping windows of at most this many frames (see backends.run_in_chunks).
    max_frames: Optional[int] = None
    # Stateful models (unidirectional recurrent layers): the recurrent state the model takes and
    # returns, carried by the runtime from one chunk to the next, so a stream keeps the model's
    # whole memory (converters.recurrent.export_stateful_onnx). The chunk's input frames sit in
    # a window with left_context_frames before and right_context_frames after it (the layers
    # before the recurrent ones see them); ``chunk_range_name`` names an int input [2]: the
    # chunk's first and end output frame within the window (only those pass the recurrent
    # layers). chunk_frames is the chunk length for fixed-shape (TFLite) models and the default
    # one for dynamic (ONNX) models; fed zeros and the range [0, a large number] the model runs
    # a whole utterance from the start.
    state: Tuple[StateTensor, ...] = ()
    chunk_range_name: Optional[str] = None

    def __post_init__(self) -> None:
        frame_counts = (
            "chunk_frames",
            "left_context_frames",
            "right_context_frames",
            "stream_context_frames",
            "max_frames",
            "clip_frames",
        )
        for field in frame_counts:  # each sizes a window, a buffer or the work per chunk
            _check_integer(getattr(self, field), f"input.{field}", _INPUT_FIELDS[field])
        if not isinstance(self.state, (list, tuple)):
            raise BundleError(f"input state must be a list of state tensors, got {self.state!r}")
        _check_length(self.state, "input.state", _INPUT_FIELDS["state"])
        object.__setattr__(self, "state", tuple(StateTensor.from_any(s) for s in self.state))
        if self.state:
            if self.chunk_range_name is None or self.chunk_frames is None:
                raise BundleError("a stateful input (input.state) needs chunk_range_name and chunk_frames")
            if self.kind != "features" or self.length_name or self.mask_name or self.max_frames is not None:
                raise BundleError("a stateful input takes features only (no length or mask input, no max_frames)")
            names = [self.name, self.chunk_range_name] + [s.input for s in self.state]
            if len(set(names)) != len(names) or len({s.output for s in self.state}) != len(self.state):
                raise BundleError(f"input state names must be distinct from each other and the inputs, got {names}")
        elif self.chunk_range_name is not None:
            raise BundleError("input chunk_range_name is for stateful models (input.state)")
        if self.kind not in INPUT_KINDS:
            raise BundleError(f"input kind must be one of {INPUT_KINDS}, got {self.kind!r}")
        if self.normalize and self.kind != "waveform":
            raise BundleError("input normalize applies to waveform input only (features have their own CMVN)")
        if self.kind == "waveform" and self.chunk_frames is not None:
            raise BundleError("waveform input runs whole utterances; chunk_frames is for feature input")
        if self.layout not in ("time_major", "channel_major"):
            raise BundleError(f"input layout must be 'time_major' or 'channel_major', got {self.layout!r}")
        if self.chunk_frames is not None and self.chunk_frames < 1:
            raise BundleError(f"input chunk_frames must be >= 1, got {self.chunk_frames}")
        if self.left_context_frames < 0 or self.right_context_frames < 0:
            raise BundleError("input context frames must be >= 0")
        if self.stream_context_frames is not None and self.stream_context_frames < 0:
            raise BundleError("input stream_context_frames must be >= 0")
        if self.max_frames is not None and (self.max_frames < 4 or self.chunk_frames is not None):
            raise BundleError(
                f"input max_frames ({self.max_frames}) must be >= 4, for dynamic-shape models (without chunk_frames)"
            )
        if self.clip_frames is not None and (
            self.clip_frames < 1 or self.chunk_frames is not None or self.kind != "features"
        ):
            raise BundleError(
                f"input clip_frames ({self.clip_frames}) must be >= 1, for feature input, without "
                "chunk_frames (a classifier takes one clip)"
            )


@dataclasses.dataclass(frozen=True)
class Manifest:
    """The parsed, validated ``manifest.json``. ``models`` maps a format (``onnx``, ``tflite``)
    to a file name; ``files`` maps every file name to ``{"sha256", "size"}``."""

    kind: str
    sample_rate: int
    features: Optional[FeatureConfig]  # None for waveform input
    tokens: Tuple[str, ...]
    models: Mapping[str, str]
    blank_id: int = 0
    subsampling_factor: int = 1
    input: InputSpec = InputSpec()
    format_inputs: Mapping[str, InputSpec] = dataclasses.field(default_factory=dict)  # per-format overrides
    output_is_log_probs: bool = True
    quantization: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"scheme": "float"})
    target: Optional[str] = None
    name: str = "model"
    files: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    provenance: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    verification: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # Decoder defaults: "lm" (an ARPA file among ``files``, .gz allowed), "lm_weight",
    # "word_bonus", "beam", "lexicon" (restrict words to the LM's unigrams), "grammar_threshold"
    # (the command-rejection confidence calibrated for this model), "grammar_token_bonus"
    decoder: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    schema_version: Optional[int] = None  # None: the lowest version that describes this manifest

    def __post_init__(self) -> None:
        stateful = any(spec.state for spec in (self.input, *self.format_inputs.values()))
        version = self.schema_version
        if version is None:
            version = 3 if stateful else 2 if self.waveform_input else 1
            object.__setattr__(self, "schema_version", version)
        if stateful and version < 3:
            raise BundleError(
                f"recurrent state (input.state) needs schema_version 3, the manifest says {self.schema_version}"
            )
        if self.kind not in MODEL_KINDS:
            raise BundleError(f"manifest kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        if not isinstance(self.sample_rate, int) or self.sample_rate <= 0:
            raise BundleError(f"manifest sample_rate must be a positive int, got {self.sample_rate!r}")
        _check_integer(self.sample_rate, "sample_rate", _TOP_FIELDS["sample_rate"])
        if not self.tokens:
            raise BundleError("manifest has no tokens")
        _check_length(self.tokens, "tokens", _TOP_FIELDS["tokens"])
        for field in ("blank_id", "subsampling_factor"):
            _check_integer(getattr(self, field), field, _TOP_FIELDS[field])
        clips = [spec.clip_frames for spec in (self.input, *self.format_inputs.values())]
        if self.kind == "classifier" and None in clips:
            raise BundleError("a classifier manifest needs input.clip_frames (the clip length it was trained on)")
        if self.kind == "ctc" and clips != [None] * len(clips):
            raise BundleError("input.clip_frames is for classifiers; a CTC model takes utterances of any length")
        if self.kind == "ctc" and not 0 <= self.blank_id < len(self.tokens):
            raise BundleError(f"manifest blank_id {self.blank_id} is outside the {len(self.tokens)} tokens")
        if self.subsampling_factor < 1:
            raise BundleError(f"manifest subsampling_factor must be >= 1, got {self.subsampling_factor}")
        for spec in (self.input, *self.format_inputs.values()):
            if not spec.state or spec.chunk_frames is None:  # InputSpec gives every stateful input chunk_frames
                continue
            if spec.chunk_frames % self.subsampling_factor or spec.left_context_frames % self.subsampling_factor:
                raise BundleError(
                    f"a stateful input's chunk_frames ({spec.chunk_frames}) and left_context_frames "
                    f"({spec.left_context_frames}) must be multiples of the subsampling factor "
                    f"({self.subsampling_factor})"
                )
        unknown = set(self.models) - set(MODEL_FORMATS.values())
        if unknown or not self.models:
            raise BundleError(f"manifest models must map 'onnx' and/or 'tflite' to file names, got {dict(self.models)}")
        kinds = {spec.kind for spec in (self.input, *self.format_inputs.values())}
        if len(kinds) > 1:
            raise BundleError(f"manifest mixes input kinds {sorted(kinds)} across formats")
        if self.waveform_input:
            if self.features is not None:
                raise BundleError(
                    "manifest has waveform input and a feature config; a waveform model takes no features"
                )
            if version < 2:
                raise BundleError(f"waveform input needs schema_version 2, the manifest says {self.schema_version}")
        elif self.features is None:
            raise BundleError("manifest has feature input but no feature config")
        else:
            try:
                self.features.check(self.sample_rate)
            except ValueError as err:
                raise BundleError(f"manifest feature config does not work at {self.sample_rate} Hz: {err}") from None
        check_decoder_defaults(self.decoder)

    @property
    def waveform_input(self) -> bool:
        """The model takes samples, not features (see :class:`InputSpec`)."""
        return self.input.kind == "waveform"

    @property
    def input_dim(self) -> Optional[int]:
        """Values per input frame: the feature dimension, None for waveform input."""
        return None if self.features is None else self.features.dim

    def input_for(self, fmt: str) -> InputSpec:
        """The input spec of one model format (TFLite models are usually fixed-shape chunks)."""
        return self.format_inputs.get(fmt, self.input)

    @property
    def frame_shift_s(self) -> float:
        """Seconds between model output frames."""
        input_shift = 1 if self.features is None else self.features.frame_shift(self.sample_rate)
        return input_shift / self.sample_rate * self.subsampling_factor

    def to_dict(self) -> dict:
        data = {
            "schema_version": self.schema_version,
            "name": self.name,
            "kind": self.kind,
            "sample_rate": self.sample_rate,
            "features": None if self.features is None else self.features.to_dict(),
            "tokens": list(self.tokens),
            "blank_id": self.blank_id,
            "subsampling_factor": self.subsampling_factor,
            "input": _spec_dict(self.input),
            "format_inputs": {fmt: _spec_dict(spec) for fmt, spec in self.format_inputs.items()},
            "output": {"is_log_probs": self.output_is_log_probs},
            "models": dict(self.models),
            "files": {k: dict(v) for k, v in self.files.items()},
            "quantization": dict(self.quantization),
            "target": self.target,
            "provenance": dict(self.provenance),
            "verification": dict(self.verification),
            "decoder": dict(self.decoder),
        }
        if self.features is None:
            del data["features"]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, source: str = "manifest") -> "Manifest":
        """The manifest of JSON ``data``, validated against the schema (when jsonschema is
        installed) and by the dataclasses' own checks; ``source`` starts every error message."""
        if not isinstance(data, Mapping):
            raise BundleError(f"{source}: the manifest must be a JSON object")
        version = data.get("schema_version")
        if not isinstance(version, int):
            raise BundleError(f"{source}: missing or non-integer schema_version")
        if version > SCHEMA_VERSION:
            raise BundleError(
                f"{source}: schema_version {version} is newer than this edge_speech supports "
                f"({SCHEMA_VERSION}); upgrade edge-speech"
            )
        if version < 1:
            raise BundleError(f"{source}: invalid schema_version {version}")
        complaint = schema_complaint(data)
        try:
            manifest = cls._from_valid_json(data, source, version)
        except BundleError as err:
            if complaint is None or complaint in str(err):
                raise
            # The runtime's own reason (often more specific) and the schema's, with the JSON path.
            raise BundleError(f"{err} (schema: {complaint})") from None
        except Exception:  # data the schema refused broke a check on the way; the schema's words say why
            if complaint is None:
                raise
            raise BundleError(f"{source}: {complaint}") from None
        if complaint is not None:
            raise BundleError(f"{source}: {complaint}")
        return manifest

    @classmethod
    def _from_valid_json(cls, data: Mapping[str, Any], source: str, version: int) -> "Manifest":
        """The hand-written checks of :meth:`from_dict` (the only ones without jsonschema)."""
        for key in ("kind", "sample_rate", "tokens", "models"):
            if key not in data:
                raise BundleError(f"{source}: missing required key {key!r}")
        for key in OBJECT_KEYS:  # a wrong JSON type here once surfaced as AttributeError/TypeError
            value = data.get(key)
            if key in data and not isinstance(value, Mapping) and not (key == "features" and value is None):
                raise BundleError(f"{source}: {key!r} must be a JSON object, got {json.dumps(value)[:40]}")
        waveform = isinstance(data.get("input"), Mapping) and data["input"].get("kind") == "waveform"
        if "features" not in data and not waveform:
            raise BundleError(f"{source}: missing required key 'features'")
        try:
            features = FeatureConfig.from_dict(data["features"]) if data.get("features") is not None else None
        except (TypeError, ValueError) as err:
            raise BundleError(f"{source}: invalid feature config: {err}") from None
        tokens = data["tokens"]
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise BundleError(f"{source}: tokens must be a list of strings")
        try:
            input_spec = InputSpec(**data.get("input", {}))
            format_inputs = {fmt: InputSpec(**spec) for fmt, spec in data.get("format_inputs", {}).items()}
        except BundleError as err:
            raise BundleError(f"{source}: {err}") from None
        except (TypeError, AttributeError) as err:
            raise BundleError(f"{source}: invalid input section: {err}") from None
        try:
            return cls(
                kind=data["kind"],
                sample_rate=data["sample_rate"],
                features=features,
                tokens=tuple(tokens),
                models=dict(data["models"]),
                blank_id=data.get("blank_id", 0),
                subsampling_factor=data.get("subsampling_factor", 1),
                input=input_spec,
                format_inputs=format_inputs,
                output_is_log_probs=bool(data.get("output", {}).get("is_log_probs", True)),
                quantization=dict(data.get("quantization", {"scheme": "float"})),
                target=data.get("target"),
                name=str(data.get("name", "model")),
                files=dict(data.get("files", {})),
                provenance=dict(data.get("provenance", {})),
                verification=dict(data.get("verification", {})),
                decoder=dict(data.get("decoder", {})),
                schema_version=version,
            )
        except BundleError as err:
            raise BundleError(f"{source}: {err}") from None
        except (TypeError, ValueError) as err:
            raise BundleError(f"{source}: invalid manifest: {err}") from None


def check_decoder_defaults(decoder: Any) -> None:
    """Raises :class:`BundleError` unless ``decoder`` is a valid manifest ``decoder`` section."""
    if not isinstance(decoder, Mapping):
        raise BundleError(f"manifest decoder must be an object, got {type(decoder).__name__}")
    unknown = set(decoder) - set(DECODER_KEYS)
    if unknown:
        raise BundleError(f"manifest decoder has unknown key(s) {sorted(unknown)}; known: {list(DECODER_KEYS)}")
    lm = decoder.get("lm")
    if lm is not None and (not isinstance(lm, str) or not lm):
        raise BundleError(f"manifest decoder lm must be a file name, got {lm!r}")
    for key in ("lm_weight", "word_bonus", "grammar_token_bonus"):
        value = decoder.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not abs(float(value)) <= 1000:
            raise BundleError(f"manifest decoder {key} must be a number within +-1000, got {value!r}")
    beam = decoder.get("beam", 1)
    if isinstance(beam, bool) or not isinstance(beam, numbers.Integral) or not 1 <= int(beam) <= 1 << 16:
        raise BundleError(f"manifest decoder beam must be an int in 1..65536, got {beam!r}")
    threshold = decoder.get("grammar_threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 <= float(threshold) <= 1:
        raise BundleError(f"manifest decoder grammar_threshold must be a number in [0, 1], got {threshold!r}")
    evidence = decoder.get("grammar_min_evidence", 0.0)
    if isinstance(evidence, bool) or not isinstance(evidence, numbers.Real) or not 0 <= float(evidence) <= 1:
        raise BundleError(f"manifest decoder grammar_min_evidence must be a number in [0, 1], got {evidence!r}")
    if not isinstance(decoder.get("lexicon", False), bool):
        raise BundleError(f"manifest decoder lexicon must be true or false, got {decoder['lexicon']!r}")
    if decoder.get("lexicon") and lm is None:
        raise BundleError("manifest decoder lexicon needs an lm (the lexicon is the LM's words)")


_check_decoder_defaults = check_decoder_defaults  # the name converters used before the split
