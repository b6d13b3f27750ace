"""The default-model recipe's ``average.py``: weight averaging of checkpoints from one start."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from recipes.default_model import average, ctc_model  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.recipe]


def _state(seed: int, channels: int = 32):
    torch.manual_seed(seed)
    model = ctc_model.ConvCTC(channels=channels, blocks=2, kernel=5)
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 80, ctc_model.FEATURE_DIM))  # moves BatchNorm statistics and step counters
    return model.state_dict()


def test_average_is_the_elementwise_mean_and_keeps_integer_counters():
    a, b = _state(0), _state(1)
    b = {name: (t + 1 if not t.is_floating_point() else t) for name, t in b.items()}
    mean = average.average_state_dicts([a, b])
    assert list(mean) == list(a)
    for name, tensor in mean.items():
        if a[name].is_floating_point():
            torch.testing.assert_close(tensor, (a[name] + b[name]) / 2)
        else:
            assert torch.equal(tensor, a[name])
    model = ctc_model.ConvCTC(channels=32, blocks=2, kernel=5)
    model.load_state_dict(mean)  # loads into the same architecture


def test_average_of_one_checkpoint_is_itself():
    a = _state(3)
    for name, tensor in average.average_state_dicts([a]).items():
        assert torch.equal(tensor, a[name])


def test_average_refuses_other_shapes_and_nothing():
    with pytest.raises(ValueError, match="checkpoint 1"):
        average.average_state_dicts([_state(0), _state(0, channels=48)])
    with pytest.raises(ValueError, match="no checkpoints"):
        average.average_state_dicts([])
