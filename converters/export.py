"""ONNX export with a dynamic time axis."""

from __future__ import annotations

import io
import warnings

from edge_speech.converters._deps import import_torch


def export_onnx(model, example_input, input_name: str = "features", output_name: str = "log_probs",
                dynamic_time: bool = True, opset: int = 17) -> bytes:
    """Serialized ONNX of ``model`` (eval mode) for inputs shaped like ``example_input``
    [1, frames, dim]; the frame axis stays dynamic unless ``dynamic_time=False`` (fixed-shape
    models for chunked runtimes). Errors name the operator that failed and what to do."""
    torch = import_torch()
    model = model.eval()
    buffer = io.BytesIO()
    axes = {input_name: {1: "frames"}, output_name: {1: "out_frames"}} if dynamic_time else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(model, (example_input,), buffer, input_names=[input_name], output_names=[output_name],
                              dynamic_axes=axes, opset_version=opset, dynamo=False, do_constant_folding=True)
    except Exception as err:  # torch.onnx raises many error types; all mean "this model does not export"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RuntimeError(f"ONNX export failed: {first}. If an operator is unsupported, replace that layer with "
                           "standard torch.nn modules or register a symbolic; data-dependent Python control "
                           "flow in forward() must be removed") from None
    return buffer.getvalue()
