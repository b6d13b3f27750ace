"""The sherpa-onnx export: sherpa-onnx's own OfflineRecognizer, fed the feature settings the export
returns, gives the same greedy text as our Recognizer on the same audio with the default model's
architecture; feature settings sherpa-onnx cannot reproduce are refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from edge_speech import Recognizer, audio, converters, features
from edge_speech.bundle import InputSpec, Manifest, write_bundle

pytestmark = pytest.mark.torch

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "default_model"
FBANK = features.FeatureConfig.preset("kaldi-fbank")


@pytest.fixture(scope="module")
def default_model(speech):
    """The default model's architecture at the shipped size (recipes/default_model/ctc_model.py)
    with seeded weights: the export is about the graph and the front end, not the trained weights
    (the recipe reproduces those; git does not track them). Its feature normalisation is fitted to
    speech, each token wins on some frames (a random head mostly says blank) and its logits spread
    as a trained model's do: long greedy texts that a few Hz of front-end difference changes."""
    from converter_models import confident, seeded

    from recipes.default_model import ctc_model

    model = seeded(ctc_model.ConvCTC, channels=384, blocks=15, kernel=9)
    fbank = features.compute(speech(16000), 16000, FBANK)
    example = torch.from_numpy(fbank)[None]
    with torch.no_grad():
        model.mean.copy_(torch.from_numpy(fbank.mean(0)))
        model.inv_std.copy_(torch.from_numpy(1.0 / (fbank.std(0) + 1e-3)))
        model.head.bias.sub_(model(example)[0].mean(0))
    confident(model, example)
    return model.eval(), ctc_model.TOKENS


def sherpa_recognizer(folder: Path, feature_kwargs: dict):
    import sherpa_onnx

    # from_zipformer_ctc builds its config with sherpa-onnx's default front end; rebuild it with ours.
    shortcut = sherpa_onnx.OfflineRecognizer.from_zipformer_ctc(
        str(folder / "model.onnx"), str(folder / "tokens.txt"), num_threads=1
    )
    config = shortcut.config
    config.feat_config = sherpa_onnx.FeatureExtractorConfig(**feature_kwargs)
    shortcut.recognizer = type(shortcut.recognizer)(config)
    return shortcut


def test_sherpa_onnx_gives_the_same_greedy_text_as_our_runtime(tmp_path, default_model, speech):
    model, tokens = default_model
    example = torch.zeros(1, 300, 80)
    feature_kwargs = converters.export_sherpa_onnx(model, example, tokens, tmp_path / "sherpa", FBANK)
    assert feature_kwargs["high_freq"] == 0.0 and feature_kwargs["snip_edges"] is True
    lines = (tmp_path / "sherpa" / "tokens.txt").read_text(encoding="utf-8").splitlines()
    assert lines[:3] == ["<blk> 0", "▁ 1", "a 2"] and len(lines) == len(tokens)
    manifest = Manifest(
        kind="ctc",
        sample_rate=16000,
        features=FBANK,
        tokens=tuple(tokens),
        models={"onnx": "model.onnx"},
        blank_id=0,
        subsampling_factor=4,
        input=InputSpec(name="features"),
    )
    write_bundle(tmp_path / "ours", manifest, {"model.onnx": converters.export_onnx(model, example)})
    ours = Recognizer.from_bundle(tmp_path / "ours", threads=1)
    sherpa = sherpa_recognizer(tmp_path / "sherpa", feature_kwargs)
    clips = [audio.load_audio(path, 16000) for path in sorted((RECIPE / "examples").glob("*.wav"))]
    samples = speech(16000)
    clips += [samples[i : i + 40000] for i in range(0, len(samples) - 16000, 40000)]
    agreeing = 0
    for clip in clips:
        stream = sherpa.create_stream()
        stream.accept_waveform(16000, clip)
        sherpa.decode_stream(stream)
        theirs, mine = stream.result.text.strip(), ours.transcribe((clip, 16000), beam=1).text
        assert len(mine) >= 10, f"the model should say something on speech: {mine!r}"
        agreeing += theirs == mine
    assert agreeing == len(clips), f"{agreeing}/{len(clips)} clips agree"


def test_sherpa_export_refuses_features_sherpa_onnx_cannot_compute(tmp_path, default_model):
    model, tokens = default_model
    with pytest.raises(ValueError, match="cannot reproduce these feature settings: .*window='hann'"):
        converters.export_sherpa_onnx(
            model, torch.zeros(1, 100, 80), tokens, tmp_path, features.FeatureConfig.preset("librosa-mel")
        )
    with pytest.raises(ValueError, match="dither=0.1"):
        converters.export_sherpa_onnx(model, torch.zeros(1, 100, 80), tokens, tmp_path, FBANK.replace(dither=0.1))
