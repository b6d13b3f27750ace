"""Writing bundles: the model files, their checksums in ``manifest.json``, and the manifest
embedded in the models' own metadata so a lone model file is self-describing.

The converter side of :mod:`edge_speech.bundle`, which only reads. Embedding needs the ``onnx``
package (ONNX) or ``ai-edge-litert`` (TFLite), both in the converter extra.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path
from typing import Mapping

from edge_speech._deps import import_litert_schema
from edge_speech.bundle import check_member_name
from edge_speech.manifest import MANIFEST_NAME, METADATA_KEY, BundleError, Manifest

__all__ = ["embed_onnx_metadata", "embed_tflite_metadata", "pack_bundle", "write_bundle"]

# TFLite files past the flatbuffer's 2 GB limit keep buffer data (and large custom options) after
# the flatbuffer, found by absolute file offsets; offsets 0 and 1 mean "not used".
_FIRST_VALID_OFFSET = 2
# The tail moves by a multiple of this, so the alignment its data had in the file is kept.
_TAIL_ALIGNMENT = 64


def write_bundle(
    directory: "str | Path", manifest: Manifest, files: Mapping[str, bytes], embed_in_onnx: bool = True
) -> Path:
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
        check_member_name(name, str(directory))
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
        checksums[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    final = dataclasses.replace(manifest, files=checksums)
    (directory / MANIFEST_NAME).write_text(final.to_json() + "\n", encoding="utf-8")
    return directory


def pack_bundle(directory: "str | Path", zip_path: "str | Path") -> Path:
    """Packs a bundle directory into one zip (members at the top level)."""
    directory, zip_path = Path(directory), Path(zip_path)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(directory).as_posix())
    return zip_path


def embed_onnx_metadata(model: bytes, metadata: Mapping[str, str]) -> bytes:
    """The ONNX model with ``metadata`` added to (or replacing keys in) its metadata_props."""
    try:
        import onnx
    except ImportError:
        raise BundleError(
            "embedding metadata in ONNX models needs the onnx package: pip install 'edge-speech[converter]'"
        ) from None
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


def embed_tflite_metadata(model: bytes, metadata: Mapping[str, str]) -> bytes:
    """The TFLite model with ``metadata`` stored in its metadata table (replacing equal names).

    Data stored after the flatbuffer (models over 2 GB) is carried over and its offsets moved
    with it."""
    import numpy as np

    schema, flatbuffers = import_litert_schema()
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
    outside = _offset_fields(tree)
    if not outside:
        return _pack_tflite(tree, flatbuffers, len(model))
    tail_start = min(getattr(owner, field) for owner, field in outside)
    tail = model[tail_start:]
    # Offsets are fixed-width fields, so moving them leaves the flatbuffer's length unchanged.
    packed_length = len(_pack_tflite(tree, flatbuffers, tail_start))
    new_start = packed_length + (tail_start - packed_length) % _TAIL_ALIGNMENT
    for owner, field in outside:
        setattr(owner, field, getattr(owner, field) + new_start - tail_start)
    packed = _pack_tflite(tree, flatbuffers, tail_start)
    if len(packed) != packed_length:
        raise BundleError("embedding TFLite metadata: the flatbuffer changed length when its offsets moved")
    return packed + bytes(new_start - len(packed)) + tail


def _offset_fields(tree) -> list:
    """(object, attribute) of every absolute file offset in the model that points past the
    flatbuffer: buffers' ``offset`` and operators' ``largeCustomOptionsOffset``."""
    fields = [(b, "offset") for b in tree.buffers if (b.offset or 0) >= _FIRST_VALID_OFFSET]
    for subgraph in tree.subgraphs or []:
        fields += [
            (op, "largeCustomOptionsOffset")
            for op in subgraph.operators or []
            if (op.largeCustomOptionsOffset or 0) >= _FIRST_VALID_OFFSET
        ]
    return fields


def _pack_tflite(tree, flatbuffers, size_hint: int) -> bytes:
    builder = flatbuffers.Builder(size_hint + 4096)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
