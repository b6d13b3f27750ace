"""Imports of the converter's heavy dependencies, with errors that say what to install."""

from __future__ import annotations


def import_torch():
    try:
        import torch
    except ImportError:
        raise ImportError(
            "the converter needs PyTorch: pip install torch==2.13.0, then pip install 'edge-speech[converter]'"
        ) from None
    return torch


def import_torch_pruning():
    try:
        import torch_pruning
    except ImportError:
        raise ImportError("pruning needs torch-pruning: pip install 'edge-speech[converter]'") from None
    return torch_pruning


def import_ort_quantization():
    try:
        from onnxruntime import quantization
    except ImportError:
        raise ImportError("quantization needs onnxruntime: pip install 'edge-speech[converter]'") from None
    return quantization


def import_litert_torch():
    try:
        import litert_torch
    except ImportError:
        raise ImportError("TFLite export needs litert-torch: pip install 'edge-speech[converter]'") from None
    return litert_torch
