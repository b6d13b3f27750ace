"""Bundles: the contract between the converter and the runtime.

A bundle is a directory (or the same files in one ``.zip``) holding ``manifest.json`` and the
model files it lists. The manifest records everything the runtime needs to reproduce the
conditions the model was trained and verified under: the feature config, tokens, frame rate,
input layout, quantization, target and provenance, the decoder's defaults (optionally a word
n-gram LM shipped in the bundle), plus the files' sha256 checksums. The same
JSON is embedded in ONNX ``metadata_props`` (key :data:`METADATA_KEY`), so a lone model file is
self-describing. The format is described by ``edge_speech/schema/manifest.schema.json``.

Loading checks the schema version, every checksum and the feature config, and raises
:class:`BundleError` (a ``ValueError``) saying exactly what is wrong. Zip bundles are read in
memory: nothing is extracted, and member names that could escape a directory are refused.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import math
import numbers
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from edge_speech.features import FeatureConfig

__all__ = ["Bundle", "BundleError", "InputSpec", "Manifest", "METADATA_KEY", "SCHEMA_VERSION", "StateTensor",
           "pack_bundle", "write_bundle"]

# 2 added waveform input, 3 recurrent state carried across chunks (input.state); a manifest is
# written with the lowest version that describes it, so bundles without them read in older runtimes.
SCHEMA_VERSION = 3
METADATA_KEY = "edge_speech.manifest"
MANIFEST_NAME = "manifest.json"
MODEL_KINDS = ("ctc", "classifier")
MODEL_FORMATS = {".onnx": "onnx", ".tflite": "tflite"}
INPUT_KINDS = ("features", "waveform")
_MAX_MEMBER_BYTES = 1 << 31
# Manifest keys whose value must be a JSON object.
OBJECT_KEYS = ("models", "input", "format_inputs", "output", "quantization", "files", "provenance", "verification",
               "decoder", "features")
DECODER_KEYS = ("lm", "lm_weight", "word_bonus", "beam", "lexicon", "grammar_threshold", "grammar_token_bonus",
                "grammar_min_evidence")


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
        if not isinstance(self.state, (list, tuple)):
            raise BundleError(f"input state must be a list of state tensors, got {self.state!r}")
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
            raise BundleError(f"input max_frames ({self.max_frames}) must be >= 4, for dynamic-shape models "
                              "(without chunk_frames)")
        if self.clip_frames is not None and (self.clip_frames < 1 or self.chunk_frames is not None
                                             or self.kind != "features"):
            raise BundleError(f"input clip_frames ({self.clip_frames}) must be >= 1, for feature input, without "
                              "chunk_frames (a classifier takes one clip)")


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
        if self.schema_version is None:
            object.__setattr__(self, "schema_version", 3 if stateful else 2 if self.waveform_input else 1)
        if stateful and self.schema_version < 3:
            raise BundleError(f"recurrent state (input.state) needs schema_version 3, the manifest says "
                              f"{self.schema_version}")
        if self.kind not in MODEL_KINDS:
            raise BundleError(f"manifest kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        if not isinstance(self.sample_rate, int) or self.sample_rate <= 0:
            raise BundleError(f"manifest sample_rate must be a positive int, got {self.sample_rate!r}")
        if not self.tokens:
            raise BundleError("manifest has no tokens")
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
            if spec.state and (spec.chunk_frames % self.subsampling_factor or spec.left_context_frames % self.subsampling_factor):
                raise BundleError(f"a stateful input's chunk_frames ({spec.chunk_frames}) and left_context_frames "
                                  f"({spec.left_context_frames}) must be multiples of the subsampling factor "
                                  f"({self.subsampling_factor})")
        unknown = set(self.models) - set(MODEL_FORMATS.values())
        if unknown or not self.models:
            raise BundleError(f"manifest models must map 'onnx' and/or 'tflite' to file names, got {dict(self.models)}")
        kinds = {spec.kind for spec in (self.input, *self.format_inputs.values())}
        if len(kinds) > 1:
            raise BundleError(f"manifest mixes input kinds {sorted(kinds)} across formats")
        if self.waveform_input:
            if self.features is not None:
                raise BundleError("manifest has waveform input and a feature config; a waveform model takes no features")
            if self.schema_version < 2:
                raise BundleError(f"waveform input needs schema_version 2, the manifest says {self.schema_version}")
            return
        if self.features is None:
            raise BundleError("manifest has feature input but no feature config")
        try:
            self.features.check(self.sample_rate)
        except ValueError as err:
            raise BundleError(f"manifest feature config does not work at {self.sample_rate} Hz: {err}") from None
        _check_decoder_defaults(self.decoder)

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
        if not isinstance(data, Mapping):
            raise BundleError(f"{source}: the manifest must be a JSON object")
        version = data.get("schema_version")
        if not isinstance(version, int):
            raise BundleError(f"{source}: missing or non-integer schema_version")
        if version > SCHEMA_VERSION:
            raise BundleError(f"{source}: schema_version {version} is newer than this edge_speech supports "
                              f"({SCHEMA_VERSION}); upgrade edge-speech")
        if version < 1:
            raise BundleError(f"{source}: invalid schema_version {version}")
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
        except (TypeError, AttributeError) as err:
            raise BundleError(f"{source}: invalid input section: {err}") from None
        try:
            return cls(
                kind=data["kind"], sample_rate=data["sample_rate"], features=features, tokens=tuple(tokens),
                models=dict(data["models"]), blank_id=data.get("blank_id", 0),
                subsampling_factor=data.get("subsampling_factor", 1), input=input_spec, format_inputs=format_inputs,
                output_is_log_probs=bool(data.get("output", {}).get("is_log_probs", True)),
                quantization=dict(data.get("quantization", {"scheme": "float"})), target=data.get("target"),
                name=str(data.get("name", "model")), files=dict(data.get("files", {})),
                provenance=dict(data.get("provenance", {})), verification=dict(data.get("verification", {})),
                decoder=dict(data.get("decoder", {})), schema_version=version,
            )
        except BundleError as err:
            raise BundleError(f"{source}: {err}") from None
        except (TypeError, ValueError) as err:
            raise BundleError(f"{source}: invalid manifest: {err}") from None


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A loaded, verified bundle: the manifest, the bytes of its model files and, when the
    manifest's decoder names one, the text of its ARPA LM (decompressed)."""

    manifest: Manifest
    source: str
    model_bytes: Mapping[str, bytes]  # format -> file content
    lm_text: Optional[bytes] = None

    @classmethod
    def load(cls, path: "str | Path") -> "Bundle":
        """Loads a bundle directory, a ``.zip`` of one, or a lone ``.onnx`` model with an
        embedded manifest."""
        path = Path(path)
        if not path.exists():
            raise BundleError(f"{path}: no such bundle, zip or model file")
        if path.is_dir():
            return cls._from_files(str(path), _DirectoryReader(path))
        if path.suffix.lower() in MODEL_FORMATS:
            return cls.from_model_file(path)
        if zipfile.is_zipfile(path):
            return cls._from_files(str(path), _ZipReader(path))
        raise BundleError(f"{path}: not a bundle directory, a .zip bundle or a .onnx/.tflite model")

    @classmethod
    def from_model_file(cls, path: "str | Path") -> "Bundle":
        """A bundle from a lone model file whose metadata embeds the manifest."""
        path = Path(path)
        fmt = MODEL_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise BundleError(f"{path}: unknown model format (expected .onnx or .tflite)")
        data = path.read_bytes()
        read = read_onnx_metadata if fmt == "onnx" else read_tflite_metadata
        text = read(data, str(path)).get(METADATA_KEY)
        if text is None:
            raise BundleError(f"{path}: the model has no '{METADATA_KEY}' metadata; it was not exported by "
                              "edge_speech's converter (load its bundle directory instead)")
        manifest = Manifest.from_dict(_parse_json(text, f"{path} metadata"), f"{path} metadata")
        # a lone model file carries no LM file: keep the other decoder defaults
        decoder = {k: v for k, v in manifest.decoder.items() if k not in ("lm", "lexicon")}
        manifest = dataclasses.replace(manifest, models={fmt: path.name}, files={},
                                       input=manifest.input_for(fmt), format_inputs={}, decoder=decoder)
        return cls(manifest=manifest, source=str(path), model_bytes={fmt: data})

    @classmethod
    def _from_files(cls, source: str, reader: "_Reader") -> "Bundle":
        manifest = Manifest.from_dict(_parse_json(reader.read(MANIFEST_NAME, source), f"{source}/{MANIFEST_NAME}"),
                                      f"{source}/{MANIFEST_NAME}")
        lm_name = manifest.decoder.get("lm")
        for name in set(manifest.models.values()) - set(manifest.files):
            raise BundleError(f"{source}: model file {name!r} has no checksum in the manifest's files")
        if lm_name is not None and lm_name not in manifest.files:
            raise BundleError(f"{source}: the decoder's LM {lm_name!r} has no checksum in the manifest's files")
        contents = {}
        for name, entry in manifest.files.items():
            data = reader.read(name, source)
            if "size" in entry and len(data) != entry["size"]:
                raise BundleError(f"{source}/{name}: size {len(data)} bytes, manifest says {entry['size']} "
                                  "(truncated or replaced file)")
            digest = hashlib.sha256(data).hexdigest()
            if digest != entry.get("sha256"):
                raise BundleError(f"{source}/{name}: sha256 mismatch (file corrupted or modified): "
                                  f"{digest[:12]}… != manifest {str(entry.get('sha256'))[:12]}…")
            contents[name] = data
        lm_text = None
        if lm_name is not None:
            lm_text = contents[lm_name]
            if lm_name.endswith(".gz"):
                try:
                    lm_text = gzip.decompress(lm_text)
                except (OSError, EOFError) as err:
                    raise BundleError(f"{source}/{lm_name}: not a valid gzip file: {err}") from None
        return cls(manifest=manifest, source=source,
                   model_bytes={fmt: contents[name] for fmt, name in manifest.models.items()}, lm_text=lm_text)


def write_bundle(directory: "str | Path", manifest: Manifest, files: Mapping[str, bytes],
                 embed_in_onnx: bool = True) -> Path:
    """Writes ``files`` and a ``manifest.json`` recording their checksums into ``directory``.

    With ``embed_in_onnx`` the manifest JSON is also stored in the ONNX and TFLite models' own
    metadata (this needs the ``onnx`` and ``ai-edge-litert`` packages, part of the converter
    extra). Returns the directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = dict(files)
    for fmt, name in manifest.models.items():
        if name not in files:
            raise BundleError(f"write_bundle: the manifest's {fmt} model {name!r} is not among the files")
    if embed_in_onnx:
        lone = dataclasses.replace(manifest, files={})
        for fmt, name in manifest.models.items():
            embed = embed_onnx_metadata if fmt == "onnx" else embed_tflite_metadata
            files[name] = embed(files[name], {METADATA_KEY: lone.to_json()})
    checksums = {}
    for name, data in files.items():
        _check_member_name(name, str(directory))
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
        checksums[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    final = dataclasses.replace(manifest, files=checksums)
    (directory / MANIFEST_NAME).write_text(final.to_json() + "\n", encoding="utf-8")
    return directory


def read_onnx_metadata(model: bytes, source: str) -> Dict[str, str]:
    """``metadata_props`` of an ONNX model, read with onnxruntime (the runtime has no onnx)."""
    from edge_speech.backends import import_onnxruntime

    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for bad files
        raise BundleError(f"{source}: not a valid ONNX model ({str(err).splitlines()[0]})") from None
    return dict(session.get_modelmeta().custom_metadata_map)


def embed_onnx_metadata(model: bytes, metadata: Mapping[str, str]) -> bytes:
    """The ONNX model with ``metadata`` added to (or replacing keys in) its metadata_props."""
    try:
        import onnx
    except ImportError:
        raise BundleError("embedding metadata in ONNX models needs the onnx package: "
                          "pip install 'edge-speech[converter]'") from None
    try:
        proto = onnx.load_from_string(model)
    except Exception as err:  # protobuf's DecodeError and onnx's own errors
        raise BundleError(f"not a valid ONNX model ({err})") from None
    kept = [p for p in proto.metadata_props if p.key not in metadata]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()


def _tflite_schema():
    try:
        import flatbuffers
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise BundleError("TFLite model metadata needs ai-edge-litert: pip install 'edge-speech[tflite]'") from None
    return schema, flatbuffers


def read_tflite_metadata(model: bytes, source: str) -> Dict[str, str]:
    """The string entries of a TFLite model's metadata table."""
    schema, _ = _tflite_schema()
    if len(model) < 8 or model[4:8] != b"TFL3":
        raise BundleError(f"{source}: not a TFLite flatbuffer")
    try:
        root = schema.Model.GetRootAs(model, 0)
        out = {}
        for i in range(root.MetadataLength()):
            entry = root.Metadata(i)
            data = root.Buffers(entry.Buffer()).DataAsNumpy()
            if not isinstance(data, int):  # 0 means an empty buffer
                out[entry.Name().decode("utf-8")] = bytes(data).decode("utf-8", errors="replace")
        return out
    except Exception as err:  # flatbuffers raises IndexError/struct errors on truncated files
        raise BundleError(f"{source}: corrupt TFLite model ({err})") from None


def embed_tflite_metadata(model: bytes, metadata: Mapping[str, str]) -> bytes:
    """The TFLite model with ``metadata`` stored in its metadata table (replacing equal names)."""
    import numpy as np

    schema, flatbuffers = _tflite_schema()
    try:
        tree = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    except Exception as err:  # flatbuffers' own errors on garbage
        raise BundleError(f"not a valid TFLite model ({err})") from None
    tree.buffers = tree.buffers or []
    tree.metadata = [m for m in (tree.metadata or []) if m.name.decode() not in metadata]
    for key, value in metadata.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(value.encode("utf-8"), dtype=np.uint8)
        tree.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = key, len(tree.buffers) - 1
        tree.metadata.append(entry)
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _check_decoder_defaults(decoder: Any) -> None:
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
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise BundleError(f"manifest decoder {key} must be a finite number, got {value!r}")
    beam = decoder.get("beam", 1)
    if isinstance(beam, bool) or not isinstance(beam, numbers.Integral) or not 1 <= beam <= 1 << 16:
        raise BundleError(f"manifest decoder beam must be an int in 1..65536, got {beam!r}")
    threshold = decoder.get("grammar_threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 <= threshold <= 1:
        raise BundleError(f"manifest decoder grammar_threshold must be a number in [0, 1], got {threshold!r}")
    evidence = decoder.get("grammar_min_evidence", 0.0)
    if isinstance(evidence, bool) or not isinstance(evidence, numbers.Real) or not 0 <= evidence <= 1:
        raise BundleError(f"manifest decoder grammar_min_evidence must be a number in [0, 1], got {evidence!r}")
    if not isinstance(decoder.get("lexicon", False), bool):
        raise BundleError(f"manifest decoder lexicon must be true or false, got {decoder['lexicon']!r}")
    if decoder.get("lexicon") and lm is None:
        raise BundleError("manifest decoder lexicon needs an lm (the lexicon is the LM's words)")


def _parse_json(text: "str | bytes", source: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{source}: not valid JSON ({err})") from None
    except RecursionError:  # json's decoder recurses per nesting level
        raise BundleError(f"{source}: JSON nested too deeply (a manifest is a few levels deep)") from None


def _check_member_name(name: str, source: str) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if not name or pure.is_absolute() or ".." in pure.parts or ":" in name:
        raise BundleError(f"{source}: unsafe file name {name!r} (absolute or escaping the bundle)")


class _Reader:
    def read(self, name: str, source: str) -> bytes:
        raise NotImplementedError


class _DirectoryReader(_Reader):
    def __init__(self, root: Path):
        self.root = root

    def read(self, name: str, source: str) -> bytes:
        _check_member_name(name, source)
        path = self.root / name
        if not path.is_file():
            raise BundleError(f"{source}: missing file {name!r}")
        root = self.root.resolve()
        if root not in path.resolve().parents:  # a symlink (file or folder) pointing out of the bundle
            raise BundleError(f"{source}: {name!r} resolves to {path.resolve()}, outside the bundle; "
                              "bundle files must be inside its folder")
        return path.read_bytes()


class _ZipReader(_Reader):
    def __init__(self, path: Path):
        from edge_speech import limits

        self.zip = zipfile.ZipFile(path)
        for info in self.zip.infolist():
            _check_member_name(info.filename, str(path))
            if info.file_size > _MAX_MEMBER_BYTES:
                raise BundleError(f"{path}: member {info.filename!r} is implausibly large ({info.file_size} bytes)")
        # zipfile never inflates a member past its declared size, so the declared total bounds
        # what reading the bundle can allocate (a 6 MB zip once made `info` take 661 MB).
        total = sum(info.file_size for info in self.zip.infolist())
        if total > limits.current().max_bundle_bytes:
            raise limits.exceeded(f"{path}: uncompressed size of the members", f"{total} bytes", "max_bundle_bytes")
        # Bundles zipped with their folder put everything under one top-level directory.
        names = [i.filename for i in self.zip.infolist() if not i.is_dir()]
        roots = {n.split("/", 1)[0] for n in names}
        self.prefix = ""
        if MANIFEST_NAME not in names and len(roots) == 1 and f"{next(iter(roots))}/{MANIFEST_NAME}" in names:
            self.prefix = next(iter(roots)) + "/"

    def read(self, name: str, source: str) -> bytes:
        _check_member_name(name, source)
        try:
            return self.zip.read(self.prefix + name)
        except KeyError:
            raise BundleError(f"{source}: missing file {name!r} in the zip") from None
        except (zipfile.BadZipFile, OSError, zlib.error, EOFError) as err:
            raise BundleError(f"{source}: corrupt zip member {name!r} ({type(err).__name__}: {err})") from None


def pack_bundle(directory: "str | Path", zip_path: "str | Path") -> Path:
    """Packs a bundle directory into one zip (members at the top level)."""
    directory, zip_path = Path(directory), Path(zip_path)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(directory).as_posix())
    return zip_path
