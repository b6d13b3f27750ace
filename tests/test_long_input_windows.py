"""Dynamic models with a longest input (``InputSpec.max_frames``, e.g. Whisper's 30 s) run longer
utterances in overlapping windows whose kept middles equal a whole run when the model's receptive
field fits in the overlap."""

from __future__ import annotations

import numpy as np
import pytest

from edge_speech import audio
from edge_speech.backends import run_in_chunks
from edge_speech.bundle import BundleError, InputSpec


def local_model(reach: int, subsampling: int, longest: int):
    """Each output frame: the mean of input frames within ``reach`` of its position (zero padded
    at the edges of what it is given); refuses inputs longer than ``longest``, as Whisper would."""

    def run(x: np.ndarray) -> np.ndarray:
        assert len(x) <= longest, f"window of {len(x)} frames exceeds the model's {longest}"
        padded = np.pad(x, ((reach, reach), (0, 0)))
        smoothed = np.stack([padded[i : i + 2 * reach + 1].mean(0) for i in range(len(x))])
        return smoothed[::subsampling]

    return run


@pytest.mark.parametrize("frames", [50, 300, 301, 1999, 2000, 2001, 4567])
@pytest.mark.parametrize("subsampling", [1, 2, 4])
def test_windows_equal_a_whole_run_away_from_the_edges(frames, subsampling):
    rng = np.random.default_rng(frames)
    x = rng.standard_normal((frames, 3)).astype(np.float32)
    reach = 12
    spec = InputSpec(max_frames=300, stream_context_frames=32)
    got = run_in_chunks(local_model(reach, subsampling, 300), x, spec, subsampling)
    whole = local_model(reach, subsampling, 10**9)(x)
    assert got.shape == whole.shape == (-(-frames // subsampling), 3)
    np.testing.assert_allclose(got, whole, atol=1e-6)


def test_max_frames_needs_a_dynamic_model():
    with pytest.raises(BundleError, match="max_frames"):
        InputSpec(max_frames=300, chunk_frames=100)
    with pytest.raises(BundleError, match="max_frames"):
        InputSpec(max_frames=2)


def test_convert_verifies_a_model_with_a_longest_input_on_longer_audio(speech_wav, tmp_path):
    """A model that cannot take more than 200 frames (a position table, as Whisper's) is evaluated
    by convert() on a longer utterance the way the runtime runs it: in windows."""
    torch = pytest.importorskip("torch")
    from edge_speech import Recognizer, converters, features

    class PositionTable(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.positions = torch.nn.Parameter(0.01 * torch.randn(200, 80))
            self.conv = torch.nn.Conv1d(80, 32, 3, stride=2, padding=1)
            self.out = torch.nn.Linear(32, 5)

        def forward(self, x):
            x = x + self.positions[: x.shape[1]]  # fails past 200 frames
            return self.out(self.conv(x.transpose(1, 2)).transpose(1, 2)).log_softmax(-1)

    path = speech_wav(16000, "Turn on the kitchen light and set a timer for ten minutes please.")
    assert len(audio.read_wav(path)[0]) // 160 > 300
    report = converters.convert(
        PositionTable(),
        torch.zeros(1, 120, 80),
        features.FeatureConfig.preset("kaldi-fbank"),
        ["<blk>", " ", "a", "b", "c"],
        calib=[path],
        eval=[(path, "abc")],
        quantize=None,
        out=tmp_path / "bundle",
        input_spec=InputSpec(max_frames=200, stream_context_frames=20),
    )
    steps = {s["step"]: s for s in report.steps}
    assert steps["export_onnx"]["vs_torch"]["cosine"] >= 0.9999
    assert steps["source"]["cer"] == steps["export_onnx"]["cer"]
    assert Recognizer.from_bundle(tmp_path / "bundle").log_probs(audio.read_wav(path)[0]).shape[1] == 5
