"""The runtime's optional dependencies, imported on first use, with errors that name what to install.

Every runtime module that needs an optional package gets it from here, and this module imports
nothing from edge_speech, so it sits at the bottom of the import graph. (The converter's heavy
dependencies have their own :mod:`edge_speech.converters._deps`.)
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailable",
    "MissingDependency",
    "import_litert",
    "import_litert_schema",
    "import_onnxruntime",
    "import_pyaudio",
    "import_soundfile",
    "import_soxr",
]


class MissingDependency(ImportError):
    """An optional package this feature needs is not installed; the message says what to install."""


class BackendUnavailable(MissingDependency):
    """The requested backend's runtime library is not installed."""


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailable(
            "the ONNX Runtime backend needs onnxruntime: pip install 'edge-speech[onnx]'"
        ) from None
    return onnxruntime


def import_litert():
    """The LiteRT interpreter class: ai_edge_litert, else tflite_runtime (numpy < 2), else
    tensorflow.lite."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return tf.lite.Interpreter
    except ImportError:
        raise BackendUnavailable("the LiteRT backend needs ai-edge-litert: pip install 'edge-speech[tflite]'") from None


def import_litert_schema():
    """(the TFLite flatbuffer schema module, the flatbuffers package), to read or edit a model file."""
    try:
        import flatbuffers
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise BackendUnavailable(
            "TFLite model metadata needs ai-edge-litert: pip install 'edge-speech[tflite]'"
        ) from None
    return schema, flatbuffers


def import_soxr():
    try:
        import soxr
    except ImportError:
        raise MissingDependency("resampling needs soxr: pip install soxr") from None
    return soxr


def import_soundfile():
    try:
        import soundfile
    except ImportError:
        raise MissingDependency(
            "reading audio other than WAV needs soundfile: pip install 'edge-speech[audio]'"
        ) from None
    return soundfile


def import_pyaudio():
    try:
        import pyaudio
    except ImportError:
        raise MissingDependency(
            "microphone input needs pyaudio: apt-get install portaudio19-dev && pip install 'edge-speech[mic]'"
        ) from None
    return pyaudio
