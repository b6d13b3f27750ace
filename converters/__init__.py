"""edge_speech's converter side: from a trained PyTorch speech model to a verified edge bundle.

Installed as ``edge_speech.converters``; it needs torch and friends (``pip install
torch==2.13.0`` then ``pip install 'edge-speech[converter]'``), which the runtime never imports.
Every step is a plain function, and :func:`convert` chains them, recording what it did::

    from edge_speech import converters
    pruned, report = converters.prune(model, example, target_macs_ratio=0.5)
    onnx_fp32 = converters.export_onnx(pruned, example)
    onnx_int8 = converters.quantize(onnx_fp32, calibration_features)
    converters.convert(model, example, feature_config, tokens, calib=wavs, prune=0.5, out="bundle/")

Models take features [batch, frames, dim] and return CTC log-probabilities or logits
[batch, frames / subsampling, vocab] (or class logits [batch, classes] for classifiers). The
caller's model is never modified. Local Hugging Face CTC directories (``Wav2Vec2ForCTC``,
``HubertForCTC``, ``WavLMForCTC``, ``Data2VecAudioForCTC``, ``Wav2Vec2ConformerForCTC``), which
take raw waveforms, go through :func:`load_hf_ctc` / :func:`convert_hf_ctc` (also named
:func:`load_wav2vec2` / :func:`convert_wav2vec2`).
"""

from edge_speech.converters.export import export_onnx, export_sherpa_onnx, export_tflite
from edge_speech.converters.finetune import FinetuneReport, finetune
from edge_speech.converters.loading import load_checkpoint
from edge_speech.converters.pipeline import ConversionReport, convert, convert_onnx
from edge_speech.converters.pruning import PruneReport, count_macs, prune
from edge_speech.converters.quantization import quantize, quantize_within_agreement, sensitivity
from edge_speech.converters.verification import VerifyReport, verify
from edge_speech.converters.wav2vec2 import (
    HFCTCSource,
    Wav2Vec2Source,
    convert_hf_ctc,
    convert_wav2vec2,
    load_hf_ctc,
    load_wav2vec2,
)

__all__ = [
    "ConversionReport",
    "FinetuneReport",
    "HFCTCSource",
    "PruneReport",
    "VerifyReport",
    "Wav2Vec2Source",
    "convert",
    "convert_hf_ctc",
    "convert_onnx",
    "convert_wav2vec2",
    "count_macs",
    "load_hf_ctc",
    "export_onnx",
    "export_sherpa_onnx",
    "export_tflite",
    "finetune",
    "load_checkpoint",
    "sensitivity",
    "load_wav2vec2",
    "prune",
    "quantize",
    "quantize_within_agreement",
    "verify",
]
