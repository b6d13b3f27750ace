"""SpecAugment (``edge_speech.converters.finetune.spec_augment``), the one implementation the
converter's fine-tuning and the default-model recipe share: it masks the requested number of
frequency bands and time spans, no wider than asked, anywhere they fit, and leaves the rest."""

from __future__ import annotations

import numpy as np
import pytest

from edge_speech.converters.finetune import spec_augment

FRAMES, DIM = 400, 40
FILL = -123.0  # no input value equals it


def runs(mask: np.ndarray) -> list:
    """(start, width) of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2])]


def features(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(1.0, 2.0, (FRAMES, DIM)).astype(np.float32)


def test_masks_at_most_the_requested_bands_and_spans_within_their_widths():
    widths, starts, ends = set(), set(), set()
    for seed in range(300):
        x = features(seed)
        y = spec_augment(
            x, np.random.default_rng(seed), freq_masks=2, freq_width=7, time_masks=3, time_width=15, fill=FILL
        )
        assert y.shape == x.shape and y.dtype == x.dtype
        masked = y == FILL
        columns = masked.all(axis=0)
        rows = masked[:, ~columns].all(axis=1) if (~columns).any() else np.ones(FRAMES, bool)
        # everything masked is a masked column or a masked row; everything else is the input
        assert np.array_equal(masked, columns[None, :] | rows[:, None])
        np.testing.assert_array_equal(y[~masked], x[~masked])
        bands, spans = runs(columns), runs(rows)
        assert len(bands) <= 2 and all(w <= 7 * 2 for _, w in bands)  # two bands may touch
        assert len(spans) <= 3 and all(w <= 15 * 3 for _, w in spans)
        for start, width in bands:
            widths.add(width)
            starts.add(start)
            ends.add(start + width)
    assert set(range(1, 8)) <= widths
    assert 0 in starts and DIM in ends  # bands reach both edges, the last bin included


def test_a_single_band_and_span_have_the_requested_width_range():
    seen_band, seen_span = set(), set()
    for seed in range(200):
        y = spec_augment(
            features(seed),
            np.random.default_rng(seed),
            freq_masks=1,
            freq_width=5,
            time_masks=1,
            time_width=9,
            fill=FILL,
        )
        masked = y == FILL
        columns = masked.all(axis=0)
        band = runs(columns)
        assert len(band) <= 1
        seen_band.add(band[0][1] if band else 0)
        span = runs(masked[:, ~columns].all(axis=1))
        assert len(span) <= 1
        seen_span.add(span[0][1] if span else 0)
    assert seen_band == set(range(6)) and seen_span == set(range(10))


def test_time_spans_stay_within_a_fifth_of_the_utterance():
    for seed in range(100):
        x = features(seed)[:20]
        y = spec_augment(x, np.random.default_rng(seed), freq_masks=0, time_masks=1, time_width=50, fill=FILL)
        assert all(width <= 4 for _, width in runs((y == FILL).all(axis=1)))


def test_default_fill_is_the_utterance_mean_and_the_input_is_untouched():
    x = features(1)
    before = x.copy()
    y = spec_augment(x, np.random.default_rng(3), freq_masks=1, freq_width=DIM, time_masks=0, fill=None)
    np.testing.assert_array_equal(x, before)
    changed = (y != x).all(axis=0)
    assert changed.any()
    np.testing.assert_allclose(y[:, changed], x.mean(), rtol=1e-6)


def test_samples_get_time_spans_only():
    samples = np.random.default_rng(0).uniform(0.1, 0.5, 16000).astype(np.float32)
    y = spec_augment(samples, np.random.default_rng(0), freq_masks=2, time_masks=2, time_width=800, fill=0.0)
    spans = runs(y == 0.0)
    assert y.shape == samples.shape and 1 <= len(spans) <= 2 and all(w <= 800 for _, w in spans)


def test_other_shapes_are_refused():
    with pytest.raises(ValueError, match="frames, dim"):
        spec_augment(np.zeros((2, 3, 4)), np.random.default_rng(0))


def test_the_recipe_uses_the_converter_implementation():
    from recipes.default_model import augment

    x = features(2)
    y = augment.spec_augment(x, np.random.default_rng(5))
    expected = spec_augment(
        x, np.random.default_rng(5), freq_masks=2, freq_width=12, time_masks=4, time_width=16, fill=None
    )
    np.testing.assert_array_equal(y, expected)
