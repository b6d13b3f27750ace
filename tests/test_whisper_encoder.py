"""The CTranslate2 -> PyTorch Whisper encoder loader is exact: a small random Whisper model is
saved by transformers, converted by CTranslate2's own converter, read back by our loader, and its
output compared with CTranslate2's encoder and with transformers' WhisperEncoder."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ctranslate2 = pytest.importorskip("ctranslate2")
transformers = pytest.importorskip("transformers")

from edge_speech.converters.whisper_encoder import (
    encoder_output_frames,
    load_ctranslate2_encoder,  # noqa: E402
    read_ctranslate2_variables,
)

pytestmark = pytest.mark.torch


@pytest.mark.parametrize("frames", [3000, 437, 20])
def test_loaded_encoder_equals_ctranslate2_and_transformers(tiny_whisper, frames):
    model, ct2_dir = tiny_whisper
    ours = load_ctranslate2_encoder(ct2_dir)
    features = np.random.default_rng(frames).standard_normal((1, frames, 80)).astype(np.float32)
    with torch.no_grad():
        got = ours(torch.from_numpy(features)).numpy()
    assert got.shape == (1, encoder_output_frames(frames), 64)

    whisper = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32")
    expected = np.asarray(
        whisper.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features.transpose(0, 2, 1))))
    )
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() <= 1e-4 * scale

    # CTranslate2 stores float16: transformers' model, rounded the same way, is a second reference
    # (it takes full 30-s windows only)
    if frames == 3000:
        encoder = model.get_encoder().half().float()
        with torch.no_grad():
            reference = encoder(torch.from_numpy(features.transpose(0, 2, 1)).contiguous()).last_hidden_state.numpy()
        assert np.abs(got - reference).max() <= 1e-4 * scale


def test_truncated_or_foreign_model_files_are_refused(tiny_whisper, tmp_path):
    _, ct2_dir = tiny_whisper
    data = (ct2_dir / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="past the end|truncated"):
        load_ctranslate2_encoder(tmp_path)
    (tmp_path / "model.bin").write_bytes(b"\x63\x00\x00\x00" + data[4:])
    with pytest.raises(ValueError, match="format 99"):
        read_ctranslate2_variables(tmp_path / "model.bin")
    (tmp_path / "model.bin").unlink()
    with pytest.raises(FileNotFoundError, match="model.bin"):
        load_ctranslate2_encoder(tmp_path)
