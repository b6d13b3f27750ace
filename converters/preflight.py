"""Checks that run before any pruning or quantization, so that a model the requested formats
cannot hold fails in seconds, naming the layer and the alternative, instead of after minutes.

- Export at several lengths: the ONNX export is run in ONNX Runtime at three lengths against
  torch (:func:`~edge_speech.converters.export.export_onnx`).
- Frame mapping: the model's output frames for several input lengths. The runtime (fixed TFLite
  windows, overlapping windows, streaming) cuts and stitches output frames as ``ceil(T / s)``
  for T input frames and subsampling s. A front end whose count is another function of T (an
  unpadded ``Conv2dSubsampling`` gives ``((T - 1) // 2 - 1) // 2``, i.e. ``(T - 3) // 4``) is
  measured, and the exported model is given the few trailing zero frames that make it
  ``ceil(T / s)`` (the frames it had are unchanged for a convolutional front end; the runtime pads
  its last window with zeros the same way). A mapping no padding fixes is refused for TFLite.
- What the formats support: litert-torch 0.10's int8 quantizer has no working rule for the
  fused ``nn.GRU`` op, so TFLite export lowers recurrent layers to explicit matmuls and gates
  (:func:`~edge_speech.converters.recurrent.lower_recurrent`), which it quantizes; the layers
  that lowering does not cover (LSTMs with ``proj_size``, ReLU RNNs) are refused for int8 TFLite.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Optional, Sequence, Tuple

from edge_speech.converters._deps import import_torch

# Lengths at which the frame mapping is measured: odd and even, around typical window sizes.
MAPPING_LENGTHS = (33, 50, 64, 97, 128, 131)


@dataclasses.dataclass(frozen=True)
class PreflightReport:
    frames: Tuple[Tuple[int, int], ...]  # (input frames, output frames) as measured
    subsampling: int
    pad_frames: int  # trailing zero frames the exported model adds
    seconds: float

    def to_dict(self) -> dict:
        return {
            "frame_mapping": {str(t): n for t, n in self.frames},
            "subsampling": self.subsampling,
            "pad_frames": self.pad_frames,
            "seconds": round(self.seconds, 2),
        }


def preflight(
    model, example_input, formats: Sequence[str], tflite_int8: bool, subsampling: int, sequence_output: bool = True
) -> PreflightReport:
    """Runs the checks above on ``model`` (features [1, frames, dim] in); raises ``ValueError``
    naming the layer or the mapping and what to do. ``sequence_output=False`` (classifiers)
    skips the frame mapping."""
    from edge_speech.converters.export import export_onnx

    start = time.perf_counter()
    if "tflite" in formats and tflite_int8:
        _check_tflite_int8_layers(model)
    export_onnx(model, example_input)  # raises naming the length or operator that fails
    frames, pad = (), 0
    if sequence_output:
        frames = _measure_frames(model, example_input)
        pad = _pad_for_ceil(model, example_input, frames, subsampling)
        if pad is None:
            mapping = ", ".join(f"{t} -> {n}" for t, n in frames)
            message = (
                f"the model's output frames are not a fixed function ceil(T / {subsampling}) of its input "
                f"frames T, nor made so by trailing padding (measured {mapping})"
            )
            if "tflite" in formats:
                raise ValueError(
                    message + "; the runtime's fixed TFLite windows need it. Use formats=('onnx',), "
                    "or pad the front end's convolutions so that T frames give ceil(T / subsampling)"
                )
    return PreflightReport(tuple(frames), subsampling, pad or 0, time.perf_counter() - start)


def _check_tflite_int8_layers(model) -> None:
    from edge_speech.converters.recurrent import lowerable

    refused = [
        (name, type(m).__name__, why) for name, m in model.named_modules() for why in [lowerable(m)] if why is not None
    ]
    if refused:
        name, kind, why = refused[0]
        raise ValueError(
            f"{name!r} (nn.{kind}, {why}): int8 TFLite cannot hold it (litert-torch 0.10's int8 quantizer "
            "has no working rule for fused recurrent ops, and the export's lowering to matmuls does not "
            "cover it). Alternatives: formats=('onnx',), whose int8 model stores the recurrent weights "
            "as int8; or quantize=None for a float TFLite model"
        )


def _measure_frames(model, example_input) -> list:
    torch = import_torch()
    dim = example_input.shape[2]
    found = []
    with torch.no_grad():
        for frames in MAPPING_LENGTHS:
            out = model(torch.zeros(1, frames, dim, dtype=example_input.dtype))
            found.append((frames, int(out.shape[1])))
    return found


def _pad_for_ceil(model, example_input, frames, subsampling: int) -> Optional[int]:
    """0 when every measured count is ceil(T / s); else the smallest trailing padding that
    makes it so at every measured length, or None."""
    torch = import_torch()
    if all(n == -(-t // subsampling) for t, n in frames):
        return 0
    dim = example_input.shape[2]
    with torch.no_grad():
        for pad in range(1, 4 * subsampling + 8):
            if all(model(torch.zeros(1, t + pad, dim)).shape[1] == -(-t // subsampling) for t, _ in frames):
                return pad
    return None


def pad_frames(model, frames: int):
    """``model`` behind a module that appends ``frames`` zero frames to its input [B, T, dim]."""
    torch = import_torch()

    class PadFrames(torch.nn.Module):
        def __init__(self, inner, pad: int):
            super().__init__()
            self.inner, self.pad = inner, pad

        def forward(self, features):
            return self.inner(torch.nn.functional.pad(features, (0, 0, 0, self.pad)))

    return PadFrames(model, frames).eval() if frames else model
