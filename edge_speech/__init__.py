"""edge_speech: offline speech recognition for small devices.

The runtime imports numpy and the native extension only; model backends (onnxruntime, LiteRT)
and the converter (torch) are optional and imported where used.
"""

import logging

from edge_speech import decoding, features
from edge_speech.classifier import Classification, KeywordClassifier
from edge_speech.recognizer import Recognizer, Transcript

__version__ = "0.1.0"  # the one version source (pyproject.toml and CMakeLists.txt read it)

# The library logs under "edge_speech.*" and never configures logging itself; the CLI does (-v/-q).
logging.getLogger(__name__).addHandler(logging.NullHandler())
__all__ = ["Classification", "KeywordClassifier", "Recognizer", "Transcript", "decoding", "features", "__version__"]
