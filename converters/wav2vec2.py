"""Local Hugging Face ``Wav2Vec2ForCTC`` directories (no hub access): the model, its tokens and
its input normalisation, ready for :func:`edge_speech.converters.convert`.

A directory holds ``config.json``, the weights (``model.safetensors``, or ``pytorch_model.bin``
read with ``weights_only=True``), the tokenizer's ``vocab.json`` (optionally
``tokenizer_config.json`` and ``added_tokens.json``) and the feature extractor's
``preprocessor_config.json``. The tokenizer's word delimiter (``|``) becomes the space token our
decoders split words on, and the pad token is the CTC blank, as in Hugging Face's CTC loss.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path
from typing import Any, Dict, Tuple

from edge_speech.converters._deps import import_torch
from edge_speech.converters.loading import read_state_dict

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclasses.dataclass(frozen=True)
class Wav2Vec2Source:
    """What :func:`load_wav2vec2` read. ``model`` maps waveforms [batch, samples] to CTC logits
    [batch, frames, vocab]; ``samples_per_frame`` is the product of the conv strides."""

    model: Any
    tokens: Tuple[str, ...]
    blank_id: int
    normalize: bool
    sample_rate: int
    samples_per_frame: int
    directory: str


def load_wav2vec2(directory: "str | Path") -> Wav2Vec2Source:
    """Reads a local ``Wav2Vec2ForCTC`` directory (see the module doc); nothing is downloaded."""
    import_torch()
    try:
        from transformers import Wav2Vec2Config, Wav2Vec2ForCTC
    except ImportError:
        raise ImportError("wav2vec2 conversion needs transformers: pip install 'edge-speech[converter]'") from None
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory (expected a Hugging Face Wav2Vec2ForCTC save_pretrained folder)")
    config_data = _read_json(root, "config.json", required=True)
    if config_data.get("model_type") != "wav2vec2":
        raise ValueError(f"{root}/config.json: model_type {config_data.get('model_type')!r}; only 'wav2vec2' "
                         "(Wav2Vec2ForCTC) directories are supported")
    config = Wav2Vec2Config.from_dict(config_data)
    weights = next((root / name for name in WEIGHT_FILES if (root / name).is_file()), None)
    if weights is None:
        sharded = [p.name for p in root.glob("*.index.json")]
        hint = f" (sharded checkpoints such as {sharded[0]} are not supported)" if sharded else ""
        raise FileNotFoundError(f"{root}: no weights; expected one of {', '.join(WEIGHT_FILES)}{hint}")
    state = _current_weight_names(read_state_dict(weights))
    model = Wav2Vec2ForCTC(config)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"{weights}: weights do not fit config.json ({str(err).splitlines()[-1].strip()})") from None
    # masked_spec_embed only serves training-time masking; older exports leave it out.
    missing = [k for k in missing if not k.endswith("masked_spec_embed")]
    if missing or unexpected:
        raise ValueError(f"{weights}: weights do not fit config.json (missing {missing[:5]}, unexpected {list(unexpected)[:5]})")
    tokens, blank_id = _tokens(root, config)
    preprocessor = _read_json(root, "preprocessor_config.json", required=False)
    rate = int(preprocessor.get("sampling_rate", 16000))
    model = ctc_logits_module()(model.eval()).eval()
    return Wav2Vec2Source(model=model, tokens=tokens, blank_id=blank_id,
                          normalize=bool(preprocessor.get("do_normalize", True)), sample_rate=rate,
                          samples_per_frame=math.prod(config.conv_stride), directory=str(root))


@functools.lru_cache(maxsize=1)
def ctc_logits_module():
    """The wrapper class (built on first use, so importing this module needs no torch)."""
    torch = import_torch()

    class Wav2Vec2Logits(torch.nn.Module):
        """waveform [batch, samples] -> CTC logits [batch, frames, vocab] (no attention mask:
        one unpadded utterance per call, which is how the runtime feeds it)."""

        def __init__(self, hf_model):
            super().__init__()
            self.hf = hf_model

        def forward(self, waveform):
            return self.hf(waveform).logits

    return Wav2Vec2Logits


@functools.lru_cache(maxsize=1)
def window_module():
    """The fixed-window wrapper class for TFLite (built on first use, like ctc_logits_module)."""
    torch = import_torch()

    class Wav2Vec2Window(torch.nn.Module):
        """waveform [1, window] (the utterance, zero-padded) and length [1] int32 (its samples) ->
        logits [1, window frames, vocab] and frames [1] int32 (how many of them the utterance
        has). The valid frames equal an unpadded run of the model: the per-channel group norm
        of the first conv layer counts valid frames only, padded frames are zeroed before the
        positional convolution (as they are beyond the end of an unpadded utterance), and
        attention gives padded keys zero weight. Masks are multiplicative, so int8 calibration
        never sees a large additive constant."""

        def __init__(self, logits_module):
            super().__init__()
            hf = getattr(logits_module, "hf", None)
            if hf is None or type(hf).__name__ != "Wav2Vec2ForCTC":
                raise ValueError("fixed-window TFLite export takes a Wav2Vec2ForCTC model (from load_wav2vec2); "
                                 "export other waveform models to ONNX")
            config = hf.wav2vec2.config
            if config.add_adapter or any(getattr(layer, "adapter_layer", None) is not None
                                         for layer in hf.wav2vec2.encoder.layers):
                raise ValueError("fixed-window TFLite export does not support wav2vec2 adapters (config.add_adapter, "
                                 "adapter_attn_dim); export this model to ONNX")
            self.hf = hf
            self.stable_layer_norm = bool(config.do_stable_layer_norm)

        def forward(self, waveform, length):
            w2v = self.hf.wav2vec2
            x = waveform[:, None]
            valid = length.reshape(1, 1, 1)
            for layer in w2v.feature_extractor.conv_layers:
                x = layer.conv(x)
                valid = torch.clamp((valid - layer.conv.kernel_size[0]) // layer.conv.stride[0] + 1, min=1)
                norm = getattr(layer, "layer_norm", None)
                if isinstance(norm, torch.nn.GroupNorm):  # one group per channel: statistics over valid time
                    mask = _valid_mask(x, valid)
                    count = mask.sum(2, keepdim=True)
                    mean = (x * mask).sum(2, keepdim=True) / count
                    var = (((x - mean) * mask) ** 2).sum(2, keepdim=True) / count
                    x = (x - mean) / torch.sqrt(var + norm.eps) * norm.weight[None, :, None] + norm.bias[None, :, None]
                elif norm is not None:  # LayerNorm over channels, frame by frame
                    x = norm(x.transpose(1, 2)).transpose(1, 2)
                x = layer.activation(x)
            mask = _valid_mask(x, valid)
            hidden, _ = w2v.feature_projection(x.transpose(1, 2))
            hidden = hidden * mask.reshape(1, -1, 1)
            encoder = w2v.encoder
            hidden = hidden + encoder.pos_conv_embed(hidden)
            if not self.stable_layer_norm:
                hidden = encoder.layer_norm(hidden)
            key_mask = mask.reshape(1, 1, 1, -1)
            for layer in encoder.layers:
                if self.stable_layer_norm:
                    hidden = hidden + _masked_attention(layer.attention, layer.layer_norm(hidden), key_mask)
                    hidden = hidden + layer.feed_forward(layer.final_layer_norm(hidden))
                else:
                    hidden = layer.layer_norm(hidden + _masked_attention(layer.attention, hidden, key_mask))
                    hidden = layer.final_layer_norm(hidden + layer.feed_forward(hidden))
            if self.stable_layer_norm:
                hidden = encoder.layer_norm(hidden)
            return self.hf.lm_head(hidden), valid.reshape(1).to(torch.int32)

    return Wav2Vec2Window


def _valid_mask(x, valid):
    """1.0 for the first ``valid`` frames of ``x`` [batch, channels, frames], else 0.0."""
    torch = import_torch()
    return (torch.arange(x.shape[2]).reshape(1, 1, -1) < valid).to(x.dtype)


def _masked_attention(attention, x, key_mask):
    """transformers' Wav2Vec2Attention (eval) with keys weighted by ``key_mask`` (0 or 1)."""
    torch = import_torch()
    batch, frames, _ = x.shape

    def heads(projection):
        return projection(x).reshape(batch, frames, attention.num_heads, attention.head_dim).transpose(1, 2)

    query, key, value = heads(attention.q_proj), heads(attention.k_proj), heads(attention.v_proj)
    scores = torch.matmul(query, key.transpose(2, 3)) * attention.scaling
    # Any upper bound of the valid scores keeps exp() finite; the max over all keys is one.
    weights = torch.exp(scores - scores.amax(-1, keepdim=True)) * key_mask
    weights = weights / weights.sum(-1, keepdim=True)
    return attention.out_proj(torch.matmul(weights, value).transpose(1, 2).reshape(batch, frames, -1))


def _tokens(root: Path, config) -> Tuple[Tuple[str, ...], int]:
    vocab = _read_json(root, "vocab.json", required=True)
    if vocab and all(isinstance(v, dict) for v in vocab.values()):
        raise ValueError(f"{root}/vocab.json holds per-language vocabularies ({', '.join(list(vocab)[:4])}); "
                         "save the processor with one target language")
    vocab = {**vocab, **_read_json(root, "added_tokens.json", required=False)}
    if not all(isinstance(i, int) for i in vocab.values()):
        raise ValueError(f"{root}/vocab.json must map tokens to integer ids")
    by_id: Dict[int, str] = {}
    for token, index in vocab.items():
        if index in by_id:
            raise ValueError(f"{root}/vocab.json: id {index} is used by both {by_id[index]!r} and {token!r}")
        by_id[index] = token
    if sorted(by_id) != list(range(len(by_id))):
        raise ValueError(f"{root}/vocab.json: ids must be 0..{len(by_id) - 1} without gaps")
    if len(by_id) != config.vocab_size:
        raise ValueError(f"{root}: the tokenizer has {len(by_id)} tokens but the model outputs "
                         f"{config.vocab_size} classes (config.json vocab_size)")
    tokenizer = _read_json(root, "tokenizer_config.json", required=False)
    delimiter = tokenizer.get("word_delimiter_token", "|")
    pad = tokenizer.get("pad_token", "<pad>")
    pad = pad.get("content") if isinstance(pad, dict) else pad
    blank_id = config.pad_token_id if config.pad_token_id is not None else vocab.get(pad)
    if blank_id is None or not 0 <= blank_id < len(by_id):
        raise ValueError(f"{root}: no CTC blank: config.json has no valid pad_token_id and the vocab has no {pad!r}")
    tokens = [" " if t == delimiter else t for _, t in sorted(by_id.items())]
    return tuple(tokens), int(blank_id)


def _current_weight_names(state: Dict[str, Any]) -> Dict[str, Any]:
    """Older transformers saved the positional conv's weight norm as weight_g/weight_v; today's
    modules hold it as a parametrization."""
    renamed = {}
    for key, value in state.items():
        if key.endswith("pos_conv_embed.conv.weight_g"):
            key = key[:-len("weight_g")] + "parametrizations.weight.original0"
        elif key.endswith("pos_conv_embed.conv.weight_v"):
            key = key[:-len("weight_v")] + "parametrizations.weight.original1"
        renamed[key] = value
    return renamed


def _read_json(root: Path, name: str, required: bool) -> dict:
    path = root / name
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"{root}: missing {name} (a Wav2Vec2ForCTC directory needs config.json, "
                                    "model.safetensors or pytorch_model.bin, and the processor's vocab.json)")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def convert_wav2vec2(directory: "str | Path", *, out: "str | Path" = "bundle", example_seconds: float = 1.0,
                     **options: Any):
    """A local ``Wav2Vec2ForCTC`` directory to a verified waveform bundle: :func:`convert` with
    the directory's tokens, blank, normalisation and frame rate. ``options`` are convert()'s
    (``calib``, ``eval``, ``prune``, ``quantize``, ``formats``, ``target``, ...); calibration and
    evaluation audio are fed as the runtime will feed them (normalised samples)."""
    torch = import_torch()
    from edge_speech.bundle import InputSpec
    from edge_speech.converters.pipeline import convert

    source = load_wav2vec2(directory)
    for key in ("feature_config", "tokens", "input_spec", "subsampling_factor", "blank_id", "sample_rate"):
        if key in options:
            raise TypeError(f"convert_wav2vec2 takes {key} from the model directory, not as an argument")
    # Pruning counts MACs on this example; speech-level noise exercises every layer.
    example = 0.1 * torch.randn(1, int(example_seconds * source.sample_rate), generator=torch.Generator().manual_seed(0))
    spec = InputSpec(name="waveform", kind="waveform", normalize=source.normalize)
    options.setdefault("name", Path(directory).name)
    return convert(source.model, example, None, source.tokens, out=out, blank_id=source.blank_id,
                   sample_rate=source.sample_rate, input_spec=spec, subsampling_factor=source.samples_per_frame,
                   output_is_log_probs=False, **options)
