"""Local Hugging Face CTC encoder directories (no hub access): ``Wav2Vec2ForCTC``,
``HubertForCTC``, ``WavLMForCTC``, ``Data2VecAudioForCTC`` and ``Wav2Vec2ConformerForCTC``, with
their tokens and input normalisation, ready for :func:`edge_speech.converters.convert`.

A directory holds ``config.json`` (its ``model_type`` picks the family), the weights
(``model.safetensors``, or ``pytorch_model.bin`` read with ``weights_only=True``), the tokenizer's
``vocab.json`` (optionally ``tokenizer_config.json`` and ``added_tokens.json``) and the feature
extractor's ``preprocessor_config.json``. The tokenizer's word delimiter (``|``) becomes the space
token our decoders split words on, and the pad token is the CTC blank, as in Hugging Face's CTC
loss.

The families share wav2vec2's shape (a strided conv feature encoder over the raw waveform, 320
samples per frame, then a Transformer or Conformer encoder and a linear CTC head); what differs is
how they encode position: a grouped positional convolution (wav2vec2, HuBERT, WavLM), a stack of
them (data2vec-audio), a gated relative position bias from bucketed distances (WavLM), or
sinusoidal relative or rotary embeddings (Conformer). Conformer's tables are recomputed from the
sequence length at run time (:func:`dynamic_positions`), so its ONNX model has no length limit and
no table constant; the index arithmetic behind all of them stays float in int8 models
(:func:`edge_speech.converters.quantization.index_arithmetic_nodes`).
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

# config.json's model_type -> transformers' config class and CTC model class.
FAMILIES = {
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2ForCTC"),
    "hubert": ("HubertConfig", "HubertForCTC"),
    "wavlm": ("WavLMConfig", "WavLMForCTC"),
    "data2vec-audio": ("Data2VecAudioConfig", "Data2VecAudioForCTC"),
    "wav2vec2-conformer": ("Wav2Vec2ConformerConfig", "Wav2Vec2ConformerForCTC"),
}
CTC_CLASSES = tuple(ctc for _, ctc in FAMILIES.values())
# Audio models people try that take something else, and what to do instead.
_NOT_HERE = {
    "wav2vec2-bert": "Wav2Vec2BertForCTC takes log-mel features, not the waveform: export it to ONNX and use "
    "converters.convert_onnx with a matching feature config",
    "whisper": "Whisper is an encoder-decoder; converters.whisper_encoder converts its encoder with a CTC head",
}


@dataclasses.dataclass(frozen=True)
class Wav2Vec2Source:
    """What :func:`load_hf_ctc` read. ``model`` maps waveforms [batch, samples] to CTC logits
    [batch, frames, vocab]; ``samples_per_frame`` is the product of the conv strides;
    ``architecture`` is the transformers class (``"HubertForCTC"``, ...)."""

    model: Any
    tokens: Tuple[str, ...]
    blank_id: int
    normalize: bool
    sample_rate: int
    samples_per_frame: int
    directory: str
    architecture: str = "Wav2Vec2ForCTC"


HFCTCSource = Wav2Vec2Source


def load_hf_ctc(directory: "str | Path") -> Wav2Vec2Source:
    """Reads a local CTC encoder directory of one of :data:`FAMILIES` (see the module doc);
    nothing is downloaded. ``load_wav2vec2`` is the same function."""
    import_torch()
    try:
        import transformers
    except ImportError:
        raise ImportError(
            "Hugging Face CTC conversion needs transformers: pip install 'edge-speech[converter]'"
        ) from None
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root}: not a directory (expected a Hugging Face save_pretrained folder of one of "
            f"{', '.join(CTC_CLASSES)})"
        )
    config_data = _read_json(root, "config.json", required=True)
    model_type = config_data.get("model_type")
    if model_type not in FAMILIES:
        why = _NOT_HERE.get(
            model_type, f"supported model_types: {', '.join(repr(t) for t in FAMILIES)} ({', '.join(CTC_CLASSES)})"
        )
        raise ValueError(f"{root}/config.json: model_type {model_type!r} is not a supported CTC encoder; {why}")
    config_name, class_name = FAMILIES[model_type]
    other = [a for a in config_data.get("architectures") or [] if a != class_name]
    if other and class_name not in (config_data.get("architectures") or []):
        raise ValueError(
            f"{root}/config.json: the weights are a {other[0]}, not a {class_name} (a CTC head over "
            "the vocabulary is needed; fine-tune one with CTC first)"
        )
    config = getattr(transformers, config_name).from_dict(config_data)
    weights = next((root / name for name in WEIGHT_FILES if (root / name).is_file()), None)
    if weights is None:
        sharded = [p.name for p in root.glob("*.index.json")]
        hint = f" (sharded checkpoints such as {sharded[0]} are not supported)" if sharded else ""
        raise FileNotFoundError(f"{root}: no weights; expected one of {', '.join(WEIGHT_FILES)}{hint}")
    state = _current_weight_names(read_state_dict(weights))
    model = getattr(transformers, class_name)(config)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"{weights}: weights do not fit config.json ({str(err).splitlines()[-1].strip()})") from None
    # masked_spec_embed only serves training-time masking; older exports leave it out. Conformer's
    # rotary inv_freq is a function of the config.
    missing = [k for k in missing if not k.endswith(("masked_spec_embed", "embed_positions.inv_freq"))]
    if missing or unexpected:
        raise ValueError(
            f"{weights}: weights do not fit config.json (missing {missing[:5]}, unexpected {list(unexpected)[:5]})"
        )
    tokens, blank_id = _tokens(root, config)
    preprocessor = _read_json(root, "preprocessor_config.json", required=False)
    rate = int(preprocessor.get("sampling_rate", 16000))
    model = ctc_logits_module()(dynamic_positions(model.eval())).eval()
    return Wav2Vec2Source(
        model=model,
        tokens=tokens,
        blank_id=blank_id,
        normalize=bool(preprocessor.get("do_normalize", True)),
        sample_rate=rate,
        samples_per_frame=math.prod(config.conv_stride),
        directory=str(root),
        architecture=class_name,
    )


load_wav2vec2 = load_hf_ctc


def dynamic_positions(hf_model):
    """``hf_model`` with a Conformer's positional embedding module replaced by one that computes
    the same table from the sequence length on every call (other families are returned as they
    are). transformers' modules cache: the rotary one returns its cached table whenever the length
    equals the last call's, so a trace at the example's length would bake the table in; the
    relative one slices a 2 x max_source_positions table held as a constant (10 MB at width 256),
    which the traced slice also ties to the trace's length. Replaces the module in place (the
    loader owns the model)."""
    encoder = getattr(hf_model.base_model, "encoder", None)
    kind = getattr(hf_model.config, "position_embeddings_type", None)
    if encoder is None or getattr(encoder, "embed_positions", None) is None or kind not in ("relative", "rotary"):
        return hf_model
    if kind == "relative":
        encoder.embed_positions = _relative_table_module()(hf_model.config.hidden_size)
    else:
        encoder.embed_positions = _rotary_table_module()(encoder.embed_positions.inv_freq)
    return hf_model


@functools.lru_cache(maxsize=1)
def _relative_table_module():
    torch = import_torch()

    class RelativePositionTable(torch.nn.Module):
        """hidden [batch, frames, width] -> [1, 2 frames - 1, width]: sinusoids of the relative
        positions frames - 1 down to -(frames - 1), sin and cos interleaved, equal to the slice
        transformers' Wav2Vec2ConformerRelPositionalEmbedding takes from its table."""

        def __init__(self, width: int):
            super().__init__()
            self.width = width

        def forward(self, hidden_states):
            return relative_sinusoids(hidden_states.shape[1], self.width, hidden_states.dtype)

    return RelativePositionTable


def relative_sinusoids(frames, width: int, dtype, runtime_one=None):
    """[1, 2 frames - 1, width]; ``frames`` may be a traced size; ``runtime_one`` (a 1.0 known
    only at run time) keeps a fixed-size export from storing the table."""
    torch = import_torch()
    # positive positions (flipped) then negative ones, as transformers orders them
    positions = (frames - 1 - torch.arange(2 * frames - 1)).to(torch.float32)[:, None]
    if runtime_one is not None:
        positions = positions * runtime_one.reshape(1, 1)
    div_term = torch.exp(torch.arange(0, width, 2, dtype=torch.int64).float() * -(math.log(10000.0) / width))
    angles = positions * div_term
    # sin(-p x) is computed as transformers does it (the product of the negated position)
    table = torch.stack((torch.sin(angles), torch.cos(angles)), dim=-1).reshape(2 * frames - 1, width)
    return table[None].to(dtype)


@functools.lru_cache(maxsize=1)
def _rotary_table_module():
    torch = import_torch()

    class RotaryTable(torch.nn.Module):
        """hidden [batch, frames, width] -> [2, frames, 1, 1, head width] (cos, sin), as transformers'
        Wav2Vec2ConformerRotaryPositionalEmbedding computes it, without its cache."""

        def __init__(self, inv_freq):
            super().__init__()
            self.register_buffer("inv_freq", inv_freq.detach().clone(), persistent=False)

        def forward(self, hidden_states):
            return rotary_table(hidden_states.shape[1], self.inv_freq).type_as(hidden_states)

    return RotaryTable


def rotary_table(frames, inv_freq, runtime_one=None):
    """[2, frames, 1, 1, head width]: cos and sin (see :func:`relative_sinusoids` for ``runtime_one``)."""
    torch = import_torch()
    time_stamps = torch.arange(frames).type_as(inv_freq)
    if runtime_one is not None:
        time_stamps = time_stamps * runtime_one.reshape(1)
    freqs = time_stamps[:, None] * inv_freq
    embeddings = torch.cat((freqs, freqs), dim=-1)
    return torch.stack([embeddings.cos()[:, None, None, :], embeddings.sin()[:, None, None, :]])


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
        has), for any of :data:`FAMILIES`. The valid frames equal an unpadded run of the model:
        the per-channel group norm of the first conv layer counts valid frames only, padded
        frames are zeroed before every convolution over time (the positional convolutions, a
        Conformer's depthwise convolution), as they are beyond the end of an unpadded utterance,
        and attention gives padded keys zero weight. Masks are multiplicative, so int8
        calibration never sees a large additive constant. Positions are those of an unpadded run
        (they start at the first sample, and relative ones depend only on distances); their index
        arithmetic (WavLM's distance buckets) is done here in Python at the window's fixed size,
        so the graph holds only the looked-up values."""

        def __init__(self, logits_module):
            super().__init__()
            hf = getattr(logits_module, "hf", None)
            if hf is None or type(hf).__name__ not in CTC_CLASSES:
                raise ValueError(
                    f"fixed-window TFLite export takes a Wav2Vec2ForCTC model or another of its family "
                    f"({', '.join(CTC_CLASSES[1:])}) from load_wav2vec2; export other waveform models "
                    "to ONNX"
                )
            config = hf.config
            if getattr(config, "add_adapter", False) or any(
                getattr(layer, "adapter_layer", None) is not None for layer in hf.base_model.encoder.layers
            ):
                raise ValueError(
                    f"fixed-window TFLite export does not support {type(hf).__name__} adapters "
                    "(config.add_adapter, adapter_attn_dim); export this model to ONNX"
                )
            self.hf = hf
            self.family = type(hf).__name__
            self.stable_layer_norm = bool(getattr(config, "do_stable_layer_norm", False))
            self.position_kind = (
                getattr(config, "position_embeddings_type", None) if self.family == "Wav2Vec2ConformerForCTC" else None
            )

        def forward(self, waveform, length):
            base = self.hf.base_model
            x = waveform[:, None]
            valid = length.reshape(1, 1, 1)
            for layer in base.feature_extractor.conv_layers:
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
            mask = _valid_mask(x, valid)  # [1, 1, frames]
            hidden = base.feature_projection(x.transpose(1, 2))
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden  # HuBERT's returns one tensor
            frame_mask = mask.reshape(1, -1, 1)
            hidden = hidden * frame_mask
            encoder = base.encoder
            key_mask = mask.reshape(1, 1, 1, -1)
            # 1.0, known only at run time: position tables and biases are computed from the window's
            # size in the model rather than folded into constants by the converter (a Conformer's
            # projected table, WavLM's frames x frames bias: hundreds of MB per window for large models).
            runtime_one = (length.reshape(1, 1, 1) >= 0).to(hidden.dtype)
            if self.family == "Wav2Vec2ConformerForCTC":  # no positional convolution (transformers skips it)
                positions = self._conformer_positions(hidden, runtime_one)
                for layer in encoder.layers:
                    hidden = _conformer_layer(layer, hidden, positions, self.position_kind, frame_mask, key_mask)
                return self.hf.lm_head(encoder.layer_norm(hidden)), valid.reshape(1).to(torch.int32)
            hidden = hidden + _positional_convolution(encoder.pos_conv_embed, hidden, mask)
            if not self.stable_layer_norm:
                hidden = encoder.layer_norm(hidden)
            bias = (
                _wavlm_bias(encoder.layers[0].attention, hidden.shape[1], runtime_one)
                if self.family == "WavLMForCTC"
                else None
            )
            for layer in encoder.layers:
                if self.stable_layer_norm:
                    hidden = hidden + _masked_attention(layer.attention, layer.layer_norm(hidden), key_mask, bias)
                    hidden = hidden + layer.feed_forward(layer.final_layer_norm(hidden))
                else:
                    hidden = layer.layer_norm(hidden + _masked_attention(layer.attention, hidden, key_mask, bias))
                    hidden = layer.final_layer_norm(hidden + layer.feed_forward(hidden))
            if self.stable_layer_norm:
                hidden = encoder.layer_norm(hidden)
            return self.hf.lm_head(hidden), valid.reshape(1).to(torch.int32)

        def _conformer_positions(self, hidden, runtime_one):
            frames = hidden.shape[1]
            if self.position_kind == "relative":
                return relative_sinusoids(frames, hidden.shape[2], hidden.dtype, runtime_one)
            if self.position_kind == "rotary":
                inv_freq = self.hf.base_model.encoder.embed_positions.inv_freq
                return rotary_table(frames, inv_freq, runtime_one).type_as(hidden)
            return None

    return Wav2Vec2Window


def _valid_mask(x, valid):
    """1.0 for the first ``valid`` frames of ``x`` [batch, channels, frames], else 0.0."""
    torch = import_torch()
    return (torch.arange(x.shape[2]).reshape(1, 1, -1) < valid).to(x.dtype)


def _positional_convolution(module, hidden, mask):
    """The encoder's convolutional relative positions of ``hidden`` [1, frames, width] (zero past
    the valid frames), each convolution seeing zeros past the valid frames ``mask`` [1, 1, frames]."""
    layers = getattr(module, "layers", None)
    if layers is not None:  # data2vec-audio: a stack of conv + same-pad + channel LayerNorm + activation
        x = hidden.transpose(1, 2)
        for layer in layers:
            x = layer(x * mask)
        return x.transpose(1, 2)
    batch_norm = getattr(module, "batch_norm", None)
    if batch_norm is None:  # wav2vec2, WavLM, HuBERT: conv (weight norm), same-pad, activation
        return module(hidden)
    x = batch_norm(hidden.transpose(1, 2)) * mask  # HuBERT's conv_pos_batch_norm comes before the conv
    return module.activation(module.padding(module.conv(x))).transpose(1, 2)


def _wavlm_bias(attention, frames: int, runtime_one):
    """WavLM's relative position bias [heads, frames, frames] at a fixed ``frames``. The distance
    buckets are computed here in Python (the float log of transformers' bucketing has no place in
    an int8 graph) for the 2 frames - 1 distances; the matrix is spread from that vector by a
    repeat-and-reshape at run time (``runtime_one`` keeps the converter from folding it into a
    frames x frames constant)."""
    torch = import_torch()
    distances = range(-(frames - 1), frames)
    buckets = torch.tensor([_wavlm_bucket(d, attention.num_buckets, attention.max_distance) for d in distances])
    values = attention.rel_attn_embed(buckets).transpose(0, 1)  # [heads, 2 frames - 1], distance -(frames - 1) first
    return _toeplitz(values * runtime_one[0], frames)


def _wavlm_bucket(distance: int, num_buckets: int, max_distance: int) -> int:
    """transformers' WavLMAttention._relative_positions_bucket for one distance (key - query),
    in float32 as there."""
    import numpy as np

    half = num_buckets // 2
    bucket = half if distance > 0 else 0
    distance = abs(distance)
    exact = half // 2
    if distance < exact:
        return bucket + distance
    large = np.log(np.float32(distance) / np.float32(exact)) / np.float32(math.log(max_distance / exact))
    large = int(np.float32(exact) + np.float32(large) * np.float32(half - exact))
    return bucket + min(large, half - 1)


def _toeplitz(values, frames: int):
    """[heads, 2 frames - 1] (distance key - query from -(frames - 1)) -> [heads, frames, frames]
    with out[h, q, k] = values[h, k - q + frames - 1]: the rows of the flattened repetition of
    ``values`` start one element earlier each (Transformer-XL's shift)."""
    width = 2 * frames - 1
    flat = values.repeat(1, frames)  # [heads, frames * width]
    rows = flat[:, frames - 1 : frames - 1 + frames * (width - 1)].reshape(-1, frames, width - 1)
    return rows[:, :, :frames]


def _masked_attention(attention, x, key_mask, wavlm_bias=None):
    """transformers' self-attention (eval) of wav2vec2, HuBERT, data2vec-audio or WavLM (with its
    gated relative position bias ``wavlm_bias`` [heads, frames, frames]), keys weighted by
    ``key_mask`` (0 or 1)."""
    torch = import_torch()
    batch, frames, _ = x.shape
    heads = attention.num_heads
    head_dim = attention.head_dim

    def split(projection):
        return projection(x).reshape(batch, frames, heads, head_dim).transpose(1, 2)

    query, key, value = split(attention.q_proj), split(attention.k_proj), split(attention.v_proj)
    scores = torch.matmul(query, key.transpose(2, 3)) * attention.scaling
    if wavlm_bias is not None:  # WavLMAttention: the bias gated per query by its own hidden state
        gated = x.reshape(batch, frames, heads, -1).permute(0, 2, 1, 3)
        projected = attention.gru_rel_pos_linear(gated).reshape(batch, heads, frames, 2, 4).sum(-1)
        gate_a, gate_b = torch.sigmoid(projected).chunk(2, dim=-1)
        gate = gate_a * (gate_b * attention.gru_rel_pos_const - 1.0) + 2.0  # [batch, heads, frames, 1]
        scores = scores + gate * wavlm_bias[None]
    return attention.out_proj(_attend(scores, value, key_mask).transpose(1, 2).reshape(batch, frames, -1))


def _attend(scores, value, key_mask):
    """softmax over keys weighted by ``key_mask``, times ``value``."""
    torch = import_torch()
    # Any upper bound of the valid scores keeps exp() finite; the max over all keys is one.
    weights = torch.exp(scores - scores.amax(-1, keepdim=True)) * key_mask
    weights = weights / weights.sum(-1, keepdim=True)
    return torch.matmul(weights, value)


def _conformer_layer(layer, hidden, positions, kind, frame_mask, key_mask):
    """transformers' Wav2Vec2ConformerEncoderLayer (eval), with padded frames zeroed before the
    depthwise convolution and excluded from attention."""
    hidden = hidden + 0.5 * layer.ffn1(layer.ffn1_layer_norm(hidden))
    hidden = hidden + _conformer_attention(
        layer.self_attn, layer.self_attn_layer_norm(hidden), positions, kind, key_mask
    )
    conv = layer.conv_module
    c = conv.glu(conv.pointwise_conv1(conv.layer_norm(hidden).transpose(1, 2)))
    c = conv.depthwise_conv(c * frame_mask.transpose(1, 2))
    c = conv.pointwise_conv2(conv.activation(conv.batch_norm(c)))
    hidden = hidden + c.transpose(1, 2)
    hidden = hidden + 0.5 * layer.ffn2(layer.ffn2_layer_norm(hidden))
    return layer.final_layer_norm(hidden)


def _conformer_attention(attention, x, positions, kind, key_mask):
    """Wav2Vec2ConformerSelfAttention (eval) with keys weighted by ``key_mask``."""
    torch = import_torch()
    batch, frames, width = x.shape
    heads, head_dim = attention.num_heads, attention.head_size
    query_key = attention._apply_rotary_embedding(x, positions) if kind == "rotary" else x

    def split(projection, source):
        return projection(source).reshape(batch, frames, heads, head_dim).transpose(1, 2)

    query, key, value = (
        split(attention.linear_q, query_key),
        split(attention.linear_k, query_key),
        split(attention.linear_v, x),
    )
    bias = None
    if kind == "relative":  # Transformer-XL's matrices b + d, shifted to relative indexing
        projected = attention.linear_pos(positions).reshape(1, 2 * frames - 1, heads, head_dim).permute(0, 2, 3, 1)
        bias = torch.matmul(query + attention.pos_bias_v[None, :, None, :], projected)  # [b, h, frames, 2 frames - 1]
        bias = torch.nn.functional.pad(bias, (1, 0)).reshape(batch, heads, 2 * frames, frames)
        bias = bias[:, :, 1:].reshape(batch, heads, frames, 2 * frames - 1)[..., :frames] * attention.scaling
        query = query + attention.pos_bias_u[None, :, None, :]
    scores = torch.matmul(query, key.transpose(2, 3)) * attention.scaling
    if bias is not None:
        scores = scores + bias
    out = _attend(scores, value, key_mask)
    return attention.linear_out(out.transpose(1, 2).reshape(batch, frames, width))


def _tokens(root: Path, config) -> Tuple[Tuple[str, ...], int]:
    vocab = _read_json(root, "vocab.json", required=True)
    if vocab and all(isinstance(v, dict) for v in vocab.values()):
        raise ValueError(
            f"{root}/vocab.json holds per-language vocabularies ({', '.join(list(vocab)[:4])}); "
            "save the processor with one target language"
        )
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
        raise ValueError(
            f"{root}: the tokenizer has {len(by_id)} tokens but the model outputs "
            f"{config.vocab_size} classes (config.json vocab_size)"
        )
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
            key = key[: -len("weight_g")] + "parametrizations.weight.original0"
        elif key.endswith("pos_conv_embed.conv.weight_v"):
            key = key[: -len("weight_v")] + "parametrizations.weight.original1"
        renamed[key] = value
    return renamed


def _read_json(root: Path, name: str, required: bool) -> dict:
    path = root / name
    if not path.is_file():
        if required:
            raise FileNotFoundError(
                f"{root}: missing {name} (a Hugging Face CTC directory needs config.json, "
                "model.safetensors or pytorch_model.bin, and the processor's vocab.json)"
            )
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def convert_hf_ctc(
    directory: "str | Path", *, out: "str | Path" = "bundle", example_seconds: float = 1.0, **options: Any
):
    """A local CTC encoder directory (``Wav2Vec2ForCTC``, ``HubertForCTC``, ``WavLMForCTC``,
    ``Data2VecAudioForCTC``, ``Wav2Vec2ConformerForCTC``) to a verified waveform bundle:
    :func:`convert` with the directory's tokens, blank, normalisation and frame rate.
    ``options`` are convert()'s (``calib``, ``eval``, ``prune``, ``quantize``, ``formats``,
    ``target``, ...); calibration and evaluation audio are fed as the runtime will feed them
    (normalised samples). ``convert_wav2vec2`` is the same function."""
    torch = import_torch()
    from edge_speech.bundle import InputSpec
    from edge_speech.converters.pipeline import convert

    source = load_hf_ctc(directory)
    for key in ("feature_config", "tokens", "input_spec", "subsampling_factor", "blank_id", "sample_rate"):
        if key in options:
            raise TypeError(f"convert_wav2vec2 takes {key} from the model directory, not as an argument")
    # Pruning counts MACs on this example; speech-level noise exercises every layer.
    example = 0.1 * torch.randn(
        1, int(example_seconds * source.sample_rate), generator=torch.Generator().manual_seed(0)
    )
    spec = InputSpec(name="waveform", kind="waveform", normalize=source.normalize)
    options.setdefault("name", Path(directory).name)
    return convert(
        source.model,
        example,
        None,
        source.tokens,
        out=out,
        blank_id=source.blank_id,
        sample_rate=source.sample_rate,
        input_spec=spec,
        subsampling_factor=source.samples_per_frame,
        output_is_log_probs=False,
        **options,
    )


convert_wav2vec2 = convert_hf_ctc
