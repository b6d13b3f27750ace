"""Reading audio files without third-party dependencies: RIFF/WAVE, any PCM width or float."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Tuple

import numpy as np

__all__ = ["read_wav"]

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


def read_wav(path: "str | Path") -> Tuple[np.ndarray, int]:
    """Returns (float32 mono samples in [-1, 1], sample_rate). Channels are averaged.

    Raises ValueError naming the problem for files that are not WAV, truncated or use an
    encoding other than PCM (8/16/24/32-bit) or IEEE float (32/64-bit).
    """
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    if data[:4] == b"RIFX":
        raise ValueError(f"{path}: big-endian RIFX WAV files are not supported")
    fmt = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8:pos + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise ValueError(f"{path}: truncated fmt chunk")
            fmt = struct.unpack_from("<HHIIHH", body)
            if fmt[0] == _EXTENSIBLE and len(body) >= 26:
                fmt = (struct.unpack_from("<H", body, 24)[0],) + fmt[1:]
        elif chunk_id == b"data":
            if fmt is None:
                raise ValueError(f"{path}: data chunk before fmt chunk")
            if len(body) < size and size != 0xFFFFFFFF:
                # A streaming writer may leave the size unset; a short file is still an error.
                raise ValueError(f"{path}: truncated: data chunk declares {size} bytes, {len(body)} present")
            return _decode(body, fmt, path)
        pos += 8 + size + (size & 1)
    raise ValueError(f"{path}: no data chunk" if fmt else f"{path}: no fmt chunk")


def _decode(body: bytes, fmt: tuple, path: Path) -> Tuple[np.ndarray, int]:
    encoding, channels, rate, _, block_align, bits = fmt
    if channels < 1 or rate < 1 or bits < 1:
        raise ValueError(f"{path}: invalid fmt chunk (channels={channels}, rate={rate}, bits={bits})")
    width = bits // 8 if bits % 8 == 0 else (bits + 7) // 8
    usable = len(body) - len(body) % (width * channels)
    raw = body[:usable]
    if encoding == _PCM and width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif encoding == _PCM and width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif encoding == _PCM and width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v)).astype(np.float32) / float(1 << 23)
    elif encoding == _PCM and width == 4:
        x = (np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    elif encoding == _FLOAT and width in (4, 8):
        x = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8").astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{path}: float samples contain NaN or Inf")
    else:
        raise ValueError(f"{path}: unsupported WAV encoding (format tag {encoding}, {bits} bits)")
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32), int(rate)
