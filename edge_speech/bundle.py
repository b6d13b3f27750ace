"""Reading bundles: the contract between the converter and the runtime.

A bundle is a directory (or the same files in one ``.zip``) holding ``manifest.json``
(:mod:`edge_speech.manifest`) and the model files it lists, with their sha256 checksums. The same
JSON is embedded in the models' metadata (ONNX ``metadata_props``, the TFLite metadata table; key
:data:`METADATA_KEY`), so a lone model file is self-describing.

Loading checks the schema version, every checksum and the feature config, and raises
:class:`BundleError` (a ``ValueError``) saying exactly what is wrong. Zip bundles are read in
memory: nothing is extracted, and member names that could escape a directory are refused.
Writing bundles is the converter's job (:mod:`edge_speech.converters.bundle_writer`); its names
stay importable from here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Mapping, Optional

from edge_speech import limits
from edge_speech._deps import BackendUnavailable, import_litert_schema, import_onnxruntime

# The schema's names, re-exported: they lived here before edge_speech.manifest.
from edge_speech.manifest import (  # noqa: F401
    DECODER_KEYS,
    INPUT_KINDS,
    MANIFEST_NAME,
    METADATA_KEY,
    MODEL_FORMATS,
    MODEL_KINDS,
    OBJECT_KEYS,
    SCHEMA_VERSION,
    BundleError,
    InputSpec,
    Manifest,
    StateTensor,
    _check_decoder_defaults,
    check_decoder_defaults,
)

# write_bundle and pack_bundle stay importable from here (module __getattr__) but live in the converter.
__all__ = [
    "Bundle",
    "BundleError",
    "InputSpec",
    "Manifest",
    "METADATA_KEY",
    "SCHEMA_VERSION",
    "StateTensor",
    "check_member_name",
    "read_onnx_metadata",
    "read_tflite_metadata",
]

_MAX_MEMBER_BYTES = 1 << 31
# A manifest is a few KB (a large vocabulary: a few MB); past this it is not one.
_MAX_MANIFEST_BYTES = 16 << 20
# Writing is the converter's; these names load it on first use, so importing the runtime never does.
_WRITER_NAMES = ("write_bundle", "pack_bundle", "embed_onnx_metadata", "embed_tflite_metadata")


def __getattr__(name: str) -> Any:
    if name in _WRITER_NAMES:
        return getattr(importlib.import_module("edge_speech.converters.bundle_writer"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A loaded, verified bundle: the manifest, the bytes of its model files and, when the
    manifest's decoder names one, the text of its ARPA LM (decompressed)."""

    manifest: Manifest
    source: str
    model_bytes: Mapping[str, bytes]  # format -> file content
    lm_text: Optional["bytes | bytearray"] = None

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
            raise BundleError(
                f"{path}: the model has no '{METADATA_KEY}' metadata; it was not exported by "
                "edge_speech's converter (load its bundle directory instead)"
            )
        manifest = Manifest.from_dict(_parse_json(text, f"{path} metadata"), f"{path} metadata")
        # a lone model file carries no LM file: keep the other decoder defaults
        decoder = {k: v for k, v in manifest.decoder.items() if k not in ("lm", "lexicon")}
        manifest = dataclasses.replace(
            manifest,
            models={fmt: path.name},
            files={},
            input=manifest.input_for(fmt),
            format_inputs={},
            decoder=decoder,
        )
        return cls(manifest=manifest, source=str(path), model_bytes={fmt: data})

    @classmethod
    def _from_files(cls, source: str, reader: "_Reader") -> "Bundle":
        size = reader.size(MANIFEST_NAME, source)
        if size > _MAX_MANIFEST_BYTES:
            raise BundleError(f"{source}/{MANIFEST_NAME}: {size} bytes; a manifest is at most {_MAX_MANIFEST_BYTES}")
        manifest = Manifest.from_dict(
            _parse_json(reader.read(MANIFEST_NAME, source, size), f"{source}/{MANIFEST_NAME}"),
            f"{source}/{MANIFEST_NAME}",
        )
        lm_name = manifest.decoder.get("lm")
        for name in set(manifest.models.values()) - set(manifest.files):
            raise BundleError(f"{source}: model file {name!r} has no checksum in the manifest's files")
        if lm_name is not None and lm_name not in manifest.files:
            raise BundleError(f"{source}: the decoder's LM {lm_name!r} has no checksum in the manifest's files")
        contents = {}
        for name, entry in manifest.files.items():
            # Sizes are compared before reading, so a file swapped for a huge one is never read whole.
            size = reader.size(name, source)
            if "size" in entry and size != entry["size"]:
                raise BundleError(
                    f"{source}/{name}: size {size} bytes, manifest says {entry['size']} (truncated or replaced file)"
                )
            if size > _MAX_MEMBER_BYTES:
                raise BundleError(
                    f"{source}/{name}: {size} bytes, more than a bundle file may hold ({_MAX_MEMBER_BYTES})"
                )
            data = reader.read(name, source, size)
            digest = hashlib.sha256(data).hexdigest()
            if digest != entry.get("sha256"):
                raise BundleError(
                    f"{source}/{name}: sha256 mismatch (file corrupted or modified): "
                    f"{digest[:12]}… != manifest {str(entry.get('sha256'))[:12]}…"
                )
            contents[name] = data
        lm_text: Optional["bytes | bytearray"] = None
        if lm_name is not None:
            lm_text = contents[lm_name]
            if lm_name.endswith(".gz"):
                if lm_text[:2] != b"\x1f\x8b":
                    raise BundleError(f"{source}/{lm_name}: not a valid gzip file (no gzip header)")
                try:  # inflated no further than limits.max_lm_bytes: a 204 KB LM once became 449 MB
                    lm_text = limits.gunzip(lm_text, f"{source}/{lm_name}", "max_lm_bytes")
                except limits.ResourceLimitError:
                    raise
                except ValueError as err:
                    raise BundleError(str(err)) from None
        return cls(
            manifest=manifest,
            source=source,
            model_bytes={fmt: contents[name] for fmt, name in manifest.models.items()},
            lm_text=lm_text,
        )


def read_onnx_metadata(model: bytes, source: str) -> Dict[str, str]:
    """``metadata_props`` of an ONNX model, read with onnxruntime (the runtime has no onnx)."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for bad files
        raise BundleError(f"{source}: not a valid ONNX model ({str(err).splitlines()[0]})") from None
    return dict(session.get_modelmeta().custom_metadata_map)


def read_tflite_metadata(model: bytes, source: str) -> Dict[str, str]:
    """The string entries of a TFLite model's metadata table."""
    try:
        schema, _ = import_litert_schema()
    except BackendUnavailable as err:  # reading a model file has always been a BundleError
        raise BundleError(str(err)) from None
    if len(model) < 8 or model[4:8] != b"TFL3":
        raise BundleError(f"{source}: not a TFLite flatbuffer")
    try:
        root = schema.Model.GetRootAs(model, 0)
        out = {}
        for i in range(root.MetadataLength()):
            entry = root.Metadata(i)
            buffer = root.Buffers(entry.Buffer())
            if buffer.Offset() > 1:  # stored after the flatbuffer (models over 2 GB)
                data = model[buffer.Offset() : buffer.Offset() + buffer.Size()]
            else:
                data = buffer.DataAsNumpy()
                if isinstance(data, int):  # 0 means an empty buffer
                    continue
            out[entry.Name().decode("utf-8")] = bytes(data).decode("utf-8", errors="replace")
        return out
    except Exception as err:  # flatbuffers raises IndexError/struct errors on truncated files
        raise BundleError(f"{source}: corrupt TFLite model ({err})") from None


def _parse_json(text: "str | bytes", source: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{source}: not valid JSON ({err})") from None
    except RecursionError:  # json's decoder recurses per nesting level
        raise BundleError(f"{source}: JSON nested too deeply (a manifest is a few levels deep)") from None


def check_member_name(name: str, source: str) -> None:
    """Refuses a bundle file name that is absolute or could escape the bundle's folder."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if not name or pure.is_absolute() or ".." in pure.parts or ":" in name:
        raise BundleError(f"{source}: unsafe file name {name!r} (absolute or escaping the bundle)")


class _Reader:
    def size(self, name: str, source: str) -> int:
        """The member's size in bytes, found without reading it."""
        raise NotImplementedError

    def read(self, name: str, source: str, size: int) -> bytes:
        """The member's bytes; refused if there are more than ``size`` (it changed meanwhile)."""
        raise NotImplementedError


class _DirectoryReader(_Reader):
    def __init__(self, root: Path):
        self.root = root

    def _path(self, name: str, source: str) -> Path:
        check_member_name(name, source)
        path = self.root / name
        if not path.is_file():  # also refuses devices and FIFOs (/dev/zero would never end)
            raise BundleError(f"{source}: missing file {name!r}")
        root = self.root.resolve()
        if root not in path.resolve().parents:  # a symlink (file or folder) pointing out of the bundle
            raise BundleError(
                f"{source}: {name!r} resolves to {path.resolve()}, outside the bundle; "
                "bundle files must be inside its folder"
            )
        return path

    def size(self, name: str, source: str) -> int:
        return self._path(name, source).stat().st_size

    def read(self, name: str, source: str, size: int) -> bytes:
        with self._path(name, source).open("rb") as file:
            data = file.read(size + 1)
        if len(data) > size:
            raise BundleError(f"{source}: {name!r} grew while the bundle was read")
        return data


class _ZipReader(_Reader):
    def __init__(self, path: Path):
        self.zip = zipfile.ZipFile(path)
        for info in self.zip.infolist():
            check_member_name(info.filename, str(path))
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

    def size(self, name: str, source: str) -> int:
        check_member_name(name, source)
        try:
            return self.zip.getinfo(self.prefix + name).file_size
        except KeyError:
            raise BundleError(f"{source}: missing file {name!r} in the zip") from None

    def read(self, name: str, source: str, size: int) -> bytes:
        # zipfile stops at the member's declared size (checked against size() and the limits)
        check_member_name(name, source)
        try:
            return self.zip.read(self.prefix + name)
        except KeyError:
            raise BundleError(f"{source}: missing file {name!r} in the zip") from None
        except (zipfile.BadZipFile, OSError, zlib.error, EOFError) as err:
            raise BundleError(f"{source}: corrupt zip member {name!r} ({type(err).__name__}: {err})") from None
