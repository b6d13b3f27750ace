"""edge_speech: offline speech recognition for small devices.

The runtime imports numpy and the native extension only; model backends (onnxruntime, LiteRT)
and the converter (torch) are optional and imported where used.
"""

from edge_speech import decoding, features
from edge_speech.classifier import Classification, KeywordClassifier
from edge_speech.recognizer import Recognizer, Transcript

__version__ = "0.1.0"
__all__ = ["Classification", "KeywordClassifier", "Recognizer", "Transcript", "decoding", "features", "__version__"]
