"""Resource limits: how much the runtime will read, decompress, allocate or nest for one input.

Every input a user or a remote client hands the runtime (audio files and arrays, bundles, LMs,
grammars) is checked against these limits before the work they imply is done, so a small
hostile file cannot make the process allocate gigabytes or run for hours; an input over a
limit gets a ``ResourceLimitError`` naming the limit and how to raise it.

The defaults suit an SDK on a 1-4 GB board. Raise a limit for one block of code, or for the
whole process::

    from edge_speech import limits

    with limits.override(max_audio_seconds=6 * 3600):
        Recognizer.default().transcribe("long_podcast.wav")
    limits.configure(max_audio_seconds=6 * 3600)  # process-wide
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from typing import Iterator


class ResourceLimitError(ValueError):
    """An input needs more than a limit of :class:`Limits` allows."""


@dataclasses.dataclass(frozen=True)
class Limits:
    max_audio_seconds: float = 3 * 3600.0  # one in-memory input (longer audio: stream it)
    max_audio_file_bytes: int = 4 << 30  # a WAV/raw file read whole
    min_sample_rate: int = 1000  # Hz; below, resampling to 16 kHz multiplies the data
    max_sample_rate: int = 768_000  # Hz; the fastest audio interfaces
    max_lm_bytes: int = 1 << 30  # an ARPA LM's text, after gzip decompression
    max_bundle_bytes: int = 2 << 30  # all of a zipped bundle's members, uncompressed
    max_grammar_states: int = 200_000  # a compiled word grammar (Home Assistant's English set: ~10 k)
    max_grammar_arcs: int = 1_000_000  # its word arcs, counted while compiling (English set: ~99 k; ~215 MB at the cap)


_lock = threading.Lock()
_process_limits = Limits()
_local = threading.local()


def current() -> Limits:
    """The limits in force in this thread: an :func:`override` block's, else the process's."""
    return getattr(_local, "limits", None) or _process_limits


def configure(**changes) -> Limits:
    """Changes the process-wide limits (fields of :class:`Limits`); returns the new ones."""
    global _process_limits
    with _lock:
        _process_limits = _replace(_process_limits, changes)
        return _process_limits


@contextlib.contextmanager
def override(**changes) -> Iterator[Limits]:
    """Limits changed for this thread, inside the ``with`` block only."""
    previous = getattr(_local, "limits", None)
    _local.limits = _replace(current(), changes)
    try:
        yield _local.limits
    finally:
        _local.limits = previous


def exceeded(what: str, value, limit: str) -> ResourceLimitError:
    """The error for ``what`` (its size ``value``) over the limit named ``limit``."""
    allowed = getattr(current(), limit)
    return ResourceLimitError(
        f"{what}: {value} is over the limit {limit}={allowed} "
        f"(raise it with edge_speech.limits.override({limit}=...) if this input is trusted)"
    )


def _replace(limits: Limits, changes: dict) -> Limits:
    unknown = set(changes) - {f.name for f in dataclasses.fields(Limits)}
    if unknown:
        raise TypeError(f"unknown limit(s) {sorted(unknown)}; known: {[f.name for f in dataclasses.fields(Limits)]}")
    for name, value in changes.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"limit {name} must be a positive number, got {value!r}")
    return dataclasses.replace(limits, **changes)


def gunzip(data: bytes, what: str, limit: str) -> "bytes | bytearray":
    """``data`` decompressed if it is gzip (by its magic bytes), never past the limit named
    ``limit``: a small bomb is refused after at most that many bytes, not after inflating. The
    output grows in one buffer (no list of parts joined at the end: that held the text twice)."""
    allowed = getattr(current(), limit)
    if data[:2] != b"\x1f\x8b":
        if len(data) > allowed:
            raise exceeded(f"{what}: size", f"{len(data)} bytes", limit)
        return data
    import zlib

    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out, pending = bytearray(), data
    try:
        while not inflater.eof:
            part = inflater.decompress(pending, 1 << 20)
            pending = inflater.unconsumed_tail
            if not part and not pending:
                raise ValueError(f"{what}: not a valid gzip file: the data ends before the end of the stream")
            if len(out) + len(part) > allowed:
                raise exceeded(f"{what}: decompressed size", f"over {allowed} bytes", limit)
            out += part
    except zlib.error as err:
        raise ValueError(f"{what}: not a valid gzip file: {err}") from None
    return out
