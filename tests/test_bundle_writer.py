"""The converter's bundle writer: metadata embedding keeps every byte a TFLite model runs on,
including data stored after the flatbuffer; the writer's names stay importable from
edge_speech.bundle without the runtime loading converter code at import time."""

import subprocess
import sys
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

import edge_speech
from edge_speech.bundle import METADATA_KEY, read_tflite_metadata
from edge_speech.converters import bundle_writer

DEFAULT_TFLITE = Path(edge_speech.__file__).parent / "models" / "default" / "model.tflite"
ALIGNMENT = 64


def _pack(tree) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def with_buffers_after_flatbuffer(model: bytes) -> bytes:
    """The model laid out as files over 2 GB are: every buffer's data after the flatbuffer,
    found by its absolute offset and size."""
    tree = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    moved = []
    for buffer in tree.buffers:
        if buffer.data is not None and len(buffer.data):
            moved.append((buffer, np.asarray(buffer.data, dtype=np.uint8).tobytes()))
            buffer.data, buffer.offset, buffer.size = None, 2, 1  # placeholders of the final field widths
    flatbuffer_length = len(_pack(tree))
    position = -(-flatbuffer_length // ALIGNMENT) * ALIGNMENT
    tail = bytearray(position - flatbuffer_length)
    for buffer, data in moved:
        padding = -position % ALIGNMENT
        tail += bytes(padding)
        buffer.offset, buffer.size = position + padding, len(data)
        tail += data
        position += padding + len(data)
    packed = _pack(tree)
    assert len(packed) == flatbuffer_length
    return packed + bytes(tail)


def run_model(model: bytes) -> np.ndarray:
    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    feed = interpreter.get_input_details()[0]
    features = np.random.default_rng(0).standard_normal(feed["shape"]).astype(np.float32)
    interpreter.set_tensor(feed["index"], features)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_embed_tflite_metadata_keeps_buffers_stored_after_the_flatbuffer():
    original = DEFAULT_TFLITE.read_bytes()
    offset_model = with_buffers_after_flatbuffer(original)
    expected = run_model(original)
    np.testing.assert_array_equal(run_model(offset_model), expected)  # the layout itself is valid

    manifest_json = '{"name": "offset-test"}'
    embedded = bundle_writer.embed_tflite_metadata(offset_model, {METADATA_KEY: manifest_json})

    assert read_tflite_metadata(embedded, "embedded")[METADATA_KEY] == manifest_json
    np.testing.assert_array_equal(run_model(embedded), expected)
    before = schema.ModelT.InitFromPackedBuf(bytearray(offset_model), 0).buffers
    after = schema.ModelT.InitFromPackedBuf(bytearray(embedded), 0).buffers
    outside = [(b, a) for b, a in zip(before, after) if b.offset > 1]
    assert outside and all(a.offset > 1 and a.offset % ALIGNMENT == b.offset % ALIGNMENT for b, a in outside)
    for b, a in outside:
        assert embedded[a.offset : a.offset + a.size] == offset_model[b.offset : b.offset + b.size]


def test_embed_tflite_metadata_twice_replaces_the_entry():
    once = bundle_writer.embed_tflite_metadata(
        with_buffers_after_flatbuffer(DEFAULT_TFLITE.read_bytes()), {METADATA_KEY: "first"}
    )
    twice = bundle_writer.embed_tflite_metadata(once, {METADATA_KEY: "second"})
    assert read_tflite_metadata(twice, "twice")[METADATA_KEY] == "second"
    np.testing.assert_array_equal(run_model(twice), run_model(DEFAULT_TFLITE.read_bytes()))


def test_writer_names_stay_importable_from_edge_speech_bundle():
    from edge_speech.bundle import embed_onnx_metadata, embed_tflite_metadata, pack_bundle, write_bundle

    assert write_bundle is bundle_writer.write_bundle and pack_bundle is bundle_writer.pack_bundle
    assert embed_onnx_metadata is bundle_writer.embed_onnx_metadata
    assert embed_tflite_metadata is bundle_writer.embed_tflite_metadata


def test_runtime_import_does_not_load_the_converter():
    code = (
        "import sys, edge_speech.bundle, edge_speech.recognizer, edge_speech.backends, edge_speech.vad; "
        "print(sorted(m for m in sys.modules if m.startswith('edge_speech.converters') or m == 'torch'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
