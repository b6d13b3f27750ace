"""Dynamic models with a longest input (``InputSpec.max_frames``, e.g. Whisper's 30 s) run longer
utterances in overlapping windows whose kept middles equal a whole run when the model's receptive
field fits in the overlap."""

from __future__ import annotations

import numpy as np
import pytest

from edge_speech.backends import run_in_chunks
from edge_speech.bundle import BundleError, InputSpec


def local_model(reach: int, subsampling: int, longest: int):
    """Each output frame: the mean of input frames within ``reach`` of its position (zero padded
    at the edges of what it is given); refuses inputs longer than ``longest``, as Whisper would."""
    def run(x: np.ndarray) -> np.ndarray:
        assert len(x) <= longest, f"window of {len(x)} frames exceeds the model's {longest}"
        padded = np.pad(x, ((reach, reach), (0, 0)))
        smoothed = np.stack([padded[i:i + 2 * reach + 1].mean(0) for i in range(len(x))])
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
    whole = local_model(reach, subsampling, 10 ** 9)(x)
    assert got.shape == whole.shape == (-(-frames // subsampling), 3)
    np.testing.assert_allclose(got, whole, atol=1e-6)


def test_max_frames_needs_a_dynamic_model():
    with pytest.raises(BundleError, match="max_frames"):
        InputSpec(max_frames=300, chunk_frames=100)
    with pytest.raises(BundleError, match="max_frames"):
        InputSpec(max_frames=2)
