"""Audio input: WAV of any PCM width or float (read here, no dependencies), FLAC/OGG through
soundfile when installed, raw PCM with an explicit format, resampling with soxr."""

from __future__ import annotations

import io
import stat
import struct
from pathlib import Path
from typing import Any, Optional, Tuple, Union

import numpy as np

from edge_speech import limits
from edge_speech._deps import MissingDependency, import_soundfile, import_soxr

__all__ = ["decode_audio", "load_audio", "parse_wav", "read_raw", "read_wav", "resample"]

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


def read_wav(path: "str | Path") -> Tuple[np.ndarray, int]:
    """Returns (float32 mono samples in [-1, 1], sample_rate). Channels are averaged.

    Raises ValueError naming the problem for files that are not WAV, truncated or use an
    encoding other than PCM (8/16/24/32-bit) or IEEE float (32/64-bit).
    """
    path = Path(path)
    return parse_wav(_read_file(path), str(path))


def parse_wav(data: bytes, what: str = "WAV data") -> Tuple[np.ndarray, int]:
    """:func:`read_wav` on a WAV file's bytes (an upload, say); ``what`` names it in errors."""
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        raise ValueError(f"{what}: not a RIFF/WAVE file")
    if data[:4] == b"RIFX":
        raise ValueError(f"{what}: big-endian RIFX WAV files are not supported")
    fmt = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise ValueError(f"{what}: truncated fmt chunk")
            fmt = struct.unpack_from("<HHIIHH", body)
            if fmt[0] == _EXTENSIBLE and len(body) >= 26:
                fmt = (struct.unpack_from("<H", body, 24)[0],) + fmt[1:]
        elif chunk_id == b"data":
            if fmt is None:
                raise ValueError(f"{what}: data chunk before fmt chunk")
            if len(body) < size and size != 0xFFFFFFFF:
                # A streaming writer may leave the size unset; a short file is still an error.
                raise ValueError(f"{what}: truncated: data chunk declares {size} bytes, {len(body)} present")
            return _decode(body, fmt, what)
        pos += 8 + size + (size & 1)
    raise ValueError(f"{what}: no data chunk" if fmt else f"{what}: no fmt chunk")


def decode_audio(data: bytes, what: str = "audio") -> Tuple[np.ndarray, int]:
    """(float32 mono samples, rate) of an audio file held in memory: WAV here, other containers
    (FLAC, OGG, ...) through soundfile when it is installed."""
    limit = limits.current().max_audio_file_bytes
    if len(data) > limit:
        raise limits.exceeded(f"{what}: size", f"{len(data)} bytes", "max_audio_file_bytes")
    if data[:4] in (b"RIFF", b"RIFX"):
        return parse_wav(data, what)
    try:
        soundfile = import_soundfile()
    except MissingDependency as err:
        raise ValueError(f"{what}: not a WAV file; {err}") from None
    try:
        info = soundfile.info(io.BytesIO(data))
        check_sample_rate(int(info.samplerate), what)
        check_duration(info.frames, int(info.samplerate), what)  # before decoding: a header may promise hours
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except limits.ResourceLimitError:
        raise
    except Exception as err:  # soundfile raises its own error types for undecodable data
        raise ValueError(f"{what}: cannot decode audio ({err})") from None
    return samples.mean(axis=1, dtype=np.float32), int(rate)


def _decode(body: bytes, fmt: tuple, what: str) -> Tuple[np.ndarray, int]:
    encoding, channels, rate, _, block_align, bits = fmt
    if channels < 1 or rate < 1 or bits < 1:
        raise ValueError(f"{what}: invalid fmt chunk (channels={channels}, rate={rate}, bits={bits})")
    check_sample_rate(rate, what)
    width = bits // 8 if bits % 8 == 0 else (bits + 7) // 8
    usable = len(body) - len(body) % (width * channels)
    raw = body[:usable]
    check_duration(usable // (width * channels), rate, what)
    if encoding == _PCM and width in (1, 2, 3, 4):
        return pcm_to_float(raw, width, channels), int(rate)
    if encoding == _FLOAT and width in (4, 8):
        x = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8").astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{what}: float samples contain NaN or Inf")
    else:
        raise ValueError(f"{what}: unsupported WAV encoding (format tag {encoding}, {bits} bits)")
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32), int(rate)


def pcm_to_float(raw: bytes, width: int, channels: int) -> np.ndarray:
    """Interleaved little-endian integer PCM (width 1 unsigned, 2/3/4 bytes signed) as float32 mono
    in [-1, 1), channels averaged. ``raw`` must hold whole frames."""
    if width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.float32) / float(1 << 23)
    elif width == 4:
        x = (np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    else:
        raise ValueError(f"PCM sample width must be 1, 2, 3 or 4 bytes, got {width}")
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


RAW_FORMATS = {"s16le": "<i2", "s32le": "<i4", "f32le": "<f4", "f64le": "<f8", "u8": "u1"}


def read_raw(
    path: "str | Path", sample_rate: int, sample_format: str = "s16le", channels: int = 1
) -> Tuple[np.ndarray, int]:
    """Headerless PCM: ``sample_format`` one of :data:`RAW_FORMATS`, interleaved channels."""
    if sample_format not in RAW_FORMATS:
        raise ValueError(f"raw sample format must be one of {sorted(RAW_FORMATS)}, got {sample_format!r}")
    if channels < 1 or sample_rate <= 0:
        raise ValueError(f"raw audio needs channels >= 1 and sample_rate > 0, got {channels}, {sample_rate}")
    check_sample_rate(sample_rate, str(path))
    dtype = np.dtype(RAW_FORMATS[sample_format])
    data = _read_file(Path(path))
    frame = dtype.itemsize * channels
    if len(data) % frame:
        raise ValueError(
            f"{path}: {len(data)} bytes is not a whole number of {channels}-channel {sample_format} frames"
        )
    x = np.frombuffer(data, dtype=dtype)
    if dtype.kind == "f":
        x = x.astype(np.float32)
    elif dtype.kind == "u":
        x = (x.astype(np.float32) - 128.0) / 128.0
    else:
        x = (x.astype(np.float64) / float(2 ** (8 * dtype.itemsize - 1))).astype(np.float32)
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    check_duration(len(x), sample_rate, str(path))
    return x, int(sample_rate)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """soxr's high-quality resampler (float32 in, float32 out); a no-op at equal rates."""
    if from_rate == to_rate:
        return samples
    check_sample_rate(from_rate, "resample from_rate")
    check_sample_rate(to_rate, "resample to_rate")
    check_duration(len(samples) * to_rate / from_rate, to_rate, "resampled audio")
    soxr = import_soxr()
    return np.asarray(soxr.resample(samples, from_rate, to_rate, quality="HQ"), dtype=np.float32)


AudioInput = Union[str, Path, Tuple[Any, int]]


def load_audio(source: AudioInput, sample_rate: int, what: Optional[str] = None) -> np.ndarray:
    """Mono float32 samples at ``sample_rate`` from a file path or a ``(samples, rate)`` pair.

    WAV is read here; other containers (FLAC, OGG, ...) go through soundfile if it is installed.
    Raises ValueError for empty audio, NaN/Inf samples and undecodable files.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        what = what or str(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such audio file")
        _check_regular_file(path)
        if path.suffix.lower() in (".wav", ".wave") or _first_bytes(path, 4) == b"RIFF":
            samples, rate = read_wav(path)
        else:
            samples, rate = _read_with_soundfile(path)
    elif isinstance(source, tuple) and len(source) == 2:
        samples, rate = source
        what = what or "audio"
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
            raise ValueError(f"{what}: sample rate must be a positive int, got {rate!r}")
        check_sample_rate(int(rate), what)
        samples = np.asarray(samples)
        if samples.dtype == np.int16:
            samples = samples.astype(np.float32) / 32768.0
        elif samples.dtype.kind != "f":
            raise TypeError(f"{what}: samples must be float or int16, got {samples.dtype}")
        if samples.ndim == 2:
            samples = _frames_by_channels(samples, what).mean(axis=1)
        if samples.ndim != 1:
            raise ValueError(f"{what}: samples must be 1-D or [frames, channels], got shape {samples.shape}")
        samples = samples.astype(np.float32, copy=False)
    else:
        raise TypeError("audio must be a file path or a (samples, sample_rate) tuple")
    if samples.size == 0:
        raise ValueError(f"{what}: the audio contains no samples")
    check_duration(samples.size, int(rate), what)
    if not np.all(np.isfinite(samples)):
        raise ValueError(f"{what}: the audio contains NaN or Inf samples")
    return resample(samples, int(rate), int(sample_rate))


def _read_with_soundfile(path: Path) -> Tuple[np.ndarray, int]:
    try:
        soundfile = import_soundfile()
    except MissingDependency as err:
        raise ValueError(f"{path}: not a WAV file; {err}") from None
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises its own error types for undecodable files
        raise ValueError(f"{path}: cannot decode audio ({err})") from None
    return data.mean(axis=1, dtype=np.float32), int(rate)


MAX_CHANNELS = 32  # an axis longer than this is time, not channels


def _frames_by_channels(samples: np.ndarray, what: str) -> np.ndarray:
    """A 2-D array as [frames, channels]; channels-first [channels, frames] is transposed."""
    frames, channels = samples.shape
    if channels <= MAX_CHANNELS:
        return samples
    if frames <= MAX_CHANNELS:
        return samples.T  # [channels, frames], as soundfile's always_2d=False transposed or torchaudio give
    raise ValueError(
        f"{what}: a 2-D array must be [frames, channels] or [channels, frames] with at most "
        f"{MAX_CHANNELS} channels, got shape {samples.shape}"
    )


def check_sample_rate(rate: int, what: str) -> None:
    bounds = limits.current()
    if rate < bounds.min_sample_rate:
        raise limits.exceeded(f"{what}: sample rate", f"{rate} Hz", "min_sample_rate") from None
    if rate > bounds.max_sample_rate:
        raise limits.exceeded(f"{what}: sample rate", f"{rate} Hz", "max_sample_rate") from None


def check_duration(samples: float, rate: int, what: str) -> None:
    seconds = samples / rate
    if seconds > limits.current().max_audio_seconds:
        raise limits.exceeded(f"{what}: duration", f"{seconds:.0f} s", "max_audio_seconds")


def _check_regular_file(path: Path) -> int:
    """The file's size; devices, FIFOs and sockets are refused (reading them may never end)."""
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a directory"
            if stat.S_ISDIR(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "not a file"
        )
        raise ValueError(
            f"{path}: {kind}, not a regular audio file (audio is read from whole files; "
            "save the stream to a file first)"
        )
    return path.stat().st_size


def _read_file(path: Path) -> bytes:
    """The whole file, bounded by ``max_audio_file_bytes`` even if it grows while being read."""
    size = _check_regular_file(path)
    limit = limits.current().max_audio_file_bytes
    if size > limit:
        raise limits.exceeded(f"{path}: file size", f"{size} bytes", "max_audio_file_bytes")
    chunks, total = [], 0
    with open(path, "rb") as f:
        # in pieces: one read(limit + 1) asks for a buffer of the whole limit (4 GiB fails on 32-bit Arm)
        while total <= limit:
            chunk = f.read(min(max(size, 1) + 1, limit + 1 - total, 1 << 26))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    if total > limit:
        raise limits.exceeded(f"{path}: file size", f"over {limit} bytes", "max_audio_file_bytes")
    return b"".join(chunks)


def _first_bytes(path: Path, count: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(count)
