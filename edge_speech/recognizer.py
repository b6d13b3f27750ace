"""The recognizer: audio -> native front end -> model backend -> native CTC decoder -> text.
(Waveform bundles, such as converted wav2vec2 models, skip the feature front end: the model
takes the samples, normalised per utterance when the manifest says so.)

    from edge_speech import Recognizer
    rec = Recognizer.from_bundle("bundle_dir_or.zip")
    res = rec.transcribe("command.wav")                 # or (samples, sample_rate)
    res.text, res.words                                 # words: text, start, end, confidence
    rec.transcribe("command.wav", lm="lm.arpa", hotwords={"kitchen light": 3.0}, beam=16)

    stream = rec.create_stream()
    stream.accept_waveform(samples, sample_rate)        # any chunk size, any rate
    stream.partial.text
    final = stream.finish()

A recognizer may be shared by threads (ONNX Runtime sessions are thread-safe, and each call
makes its own feature and decoder state); :meth:`Recognizer.transcribe_many` uses a pool.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from edge_speech import audio, decoding, features
from edge_speech._deps import import_soxr
from edge_speech.backends import Backend, create_backend_for_target, stateful_chunk
from edge_speech.bundle import Bundle, BundleError, Manifest
from edge_speech.decoding.hotwords import read_hotwords

__all__ = ["Recognizer", "RecognizerStream", "Transcript"]

HotwordsArg = Union[None, Mapping[str, float], Sequence[str]]
LMArg = Union[None, bool, str, Path]  # None: the bundle's own LM (if any); False: no LM

# The embedded English models, shipped in the wheel (no download). en-small: the 2.6 M-parameter
# convolutional model of recipes/default_model, for Pi 3/Zero-class devices and always-on use;
# en-base: Whisper base's encoder + a CTC head (recipes/whisper_model), for real voices.
EMBEDDED_MODELS = {
    "en-small": Path(__file__).parent / "models" / "default",
    "en-base": Path(__file__).parent / "models" / "en-base",
}
DEFAULT_MODEL = "en-small"
LOG = logging.getLogger(__name__)
_BEAM_DEFAULTS = decoding.BeamConfig()  # what a bundle that names no decoder setting gets
DEFAULT_BUNDLE = EMBEDDED_MODELS[DEFAULT_MODEL]


@dataclasses.dataclass(frozen=True)
class Transcript:
    """What :meth:`Recognizer.transcribe` returns.

    ``words`` carry start/end in seconds of the input and a confidence in [0, 1]. ``rtf`` is
    processing time over audio duration; ``timings`` splits it into features, model and decoding
    (seconds)."""

    text: str
    words: Tuple[decoding.Word, ...]
    tokens: Tuple[str, ...]
    score: float
    duration_s: float
    rtf: float
    timings: Mapping[str, float]
    intent: Optional[str] = None
    slots: Optional[Mapping[str, str]] = None
    confidence: Optional[float] = None
    nbest: Tuple[decoding.Hypothesis, ...] = ()

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "words": [
                {
                    "text": w.text,
                    "start": round(w.start, 3),
                    "end": round(w.end, 3),
                    "confidence": round(w.confidence, 4),
                }
                for w in self.words
            ],
            "intent": self.intent,
            "slots": dict(self.slots) if self.slots else None,
            "confidence": self.confidence,
            "rtf": round(self.rtf, 5),
        }


class Recognizer:
    """Offline and streaming CTC recognition with one bundle. Build it with :meth:`from_bundle`.

    One Recognizer may be shared by many threads: ``transcribe`` and ``log_probs`` keep no state
    between calls, and both backends are safe under contention (LiteRT through a pool of
    interpreters). Each thread needs its own stream from :meth:`create_stream`."""

    def __init__(self, bundle: Bundle, backend: Backend, beam: Optional[int] = None):
        if bundle.manifest.kind != "ctc":
            raise BundleError(f"{bundle.source}: a Recognizer needs a CTC bundle, this one is {bundle.manifest.kind!r}")
        self.bundle = bundle
        self.manifest: Manifest = bundle.manifest
        self.backend = backend
        self.vocabulary = decoding.Vocabulary(self.manifest.tokens, self.manifest.blank_id)
        self.beam = beam or self.manifest.decoder.get("beam", _BEAM_DEFAULTS.beam_width)
        self._bundle_lm = None
        if bundle.lm_text is not None:
            try:
                self._bundle_lm = decoding.ArpaLM(bundle.lm_text)
            except ValueError as err:
                raise BundleError(f"{bundle.source}/{self.manifest.decoder['lm']}: {err}") from None
        self._decoder = self._make_decoder(self.beam, None, None, None, None)
        self._per_thread = threading.local()  # a feature extractor per thread, kept between calls

    @classmethod
    def from_bundle(
        cls,
        path: "str | Path | Bundle",
        target: Optional[str] = None,
        backend: str = "auto",
        threads: Optional[int] = None,
        beam: Optional[int] = None,
    ) -> "Recognizer":
        """Loads and verifies a bundle (directory, zip or lone model) and starts its backend.

        ``target`` names a device profile (``edge-speech targets``) whose thread count and
        execution providers are used; ``threads`` overrides the profile."""
        started = time.perf_counter()
        bundle = path if isinstance(path, Bundle) else Bundle.load(path)
        recognizer = cls(bundle, create_backend_for_target(bundle, target, backend, threads), beam=beam)
        LOG.info(
            "loaded %s (%s on %s) in %.0f ms",
            bundle.source,
            bundle.manifest.name,
            recognizer.backend.name,
            1e3 * (time.perf_counter() - started),
        )
        return recognizer

    @classmethod
    def default(cls, model: Optional[str] = None, **options: Any) -> "Recognizer":
        """An embedded English model (no download): ``Recognizer.default().transcribe(path)``.

        ``model``: ``"en-small"`` (the default; small and fast, for always-on commands and Pi
        3-class devices) or ``"en-base"`` (Whisper base's encoder: far better on real voices;
        23.5 MB instead of 2.7 MB and about 9x the CPU time). Options are those of :meth:`from_bundle`."""
        name = DEFAULT_MODEL if model is None else model
        if name not in EMBEDDED_MODELS:
            raise ValueError(
                f"unknown embedded model {name!r}; choose one of {sorted(EMBEDDED_MODELS)}, "
                "or pass a bundle with --bundle / Recognizer.from_bundle()"
            )
        path = EMBEDDED_MODELS[name]
        if not (path / "manifest.json").is_file():
            raise BundleError(
                f"this edge_speech build has no embedded {name} model ({path}); "
                "pass a bundle with --bundle / Recognizer.from_bundle()"
            )
        return cls.from_bundle(path, **options)

    # -- offline --------------------------------------------------------------------------
    def transcribe(
        self,
        source: audio.AudioInput,
        *,
        beam: Optional[int] = None,
        lm: LMArg = None,
        lm_weight: Optional[float] = None,
        word_bonus: Optional[float] = None,
        hotwords: HotwordsArg = None,
        grammar: Any = None,
        grammar_threshold: Optional[float] = None,
    ) -> Transcript:
        """Transcribes a file path or a ``(samples, sample_rate)`` pair.

        ``beam`` (1 = greedy), ``lm`` (an ARPA file, shallow fusion with ``lm_weight`` and
        ``word_bonus``; None = the bundle's own LM if it ships one, False = none) and ``hotwords``
        (``{phrase: boost}``) choose the search; settings left None take the bundle's decoder
        defaults (``edge-speech info`` shows them). ``grammar`` (a
        ``.yaml``/``.yml`` intent file, a ``.gram``/``.jsgf`` JSGF file, their text, or a
        :class:`edge_speech.decoding.Grammar`) constrains it to commands: the transcript then
        carries ``intent``, ``slots`` and ``confidence``, and is empty with ``intent`` None when
        the speech is outside the grammar (confidence below ``grammar_threshold``; None = the
        bundle's calibrated threshold, else 0.5)."""
        samples = audio.load_audio(source, self.manifest.sample_rate)
        decoder = self._decoder_for(beam, lm, hotwords, lm_weight, word_bonus, grammar, grammar_threshold)
        t0 = time.perf_counter()
        model_input = self._front_end(samples)
        t1 = time.perf_counter()
        log_probs = self.log_probs_from_features(model_input)
        t2 = time.perf_counter()
        result = decoder.decode(log_probs)
        t3 = time.perf_counter()
        duration = len(samples) / self.manifest.sample_rate
        timings = {"features": t1 - t0, "model": t2 - t1, "decoding": t3 - t2}
        return self._transcript(result, duration, timings)

    def transcribe_many(
        self,
        sources: Iterable[audio.AudioInput],
        workers: Optional[int] = None,
        progress: Optional[Any] = None,
        **options: Any,
    ) -> List[Union[Transcript, Exception]]:
        """Transcribes many inputs on a thread pool (``workers``, default up to 4), in order. A
        failed input gives its exception in place of a transcript, whatever its kind (a bad file,
        a resource limit, a backend error), and the others still run; only KeyboardInterrupt and
        SystemExit stop the batch. ``progress(done, total)`` is called after each input, one call
        at a time. The recognizer and its backend are shared by the workers (they are thread-safe)."""
        sources = list(sources)
        done, lock = [0], threading.Lock()

        def one(source) -> Union[Transcript, Exception]:
            try:
                return self.transcribe(source, **options)
            except Exception as err:  # reported in its slot; the batch goes on
                return err
            finally:
                with lock:
                    done[0] += 1
                    if progress is not None:
                        progress(done[0], len(sources))

        with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
            futures = [pool.submit(one, source) for source in sources]
            try:
                return [future.result() for future in futures]
            except BaseException:  # Ctrl-C: the inputs not started yet are dropped, not run
                for future in futures:
                    future.cancel()
                raise

    def log_probs(self, samples: np.ndarray) -> np.ndarray:
        """Model log-probabilities [frames, vocab] for mono float32 samples at the bundle's rate."""
        return self.log_probs_from_features(self._front_end(samples))

    def log_probs_from_features(self, feats: np.ndarray) -> np.ndarray:
        """Log-probabilities for the model's own input: features [frames, dim], or the
        (normalised) samples of a waveform bundle."""
        if len(feats) == 0:
            return np.zeros((0, len(self.manifest.tokens)), dtype=np.float32)
        out = self.backend.run(feats)
        if out.ndim != 2 or out.shape[1] != len(self.manifest.tokens):
            raise BundleError(
                f"{self.bundle.source}: the model outputs {out.shape[-1]} classes per frame but the "
                f"manifest has {len(self.manifest.tokens)} tokens"
            )
        return out if self.manifest.output_is_log_probs else _log_softmax(out)

    # -- streaming ------------------------------------------------------------------------
    def create_stream(
        self,
        *,
        beam: Optional[int] = None,
        lm: LMArg = None,
        lm_weight: Optional[float] = None,
        word_bonus: Optional[float] = None,
        hotwords: HotwordsArg = None,
        grammar: Any = None,
        grammar_threshold: Optional[float] = None,
        chunk_frames: int = 32,
        left_context_frames: Optional[int] = None,
        right_context_frames: Optional[int] = None,
    ) -> "RecognizerStream":
        """A stream fed with audio chunks; partial results at any time. Dynamic-shape models run
        on windows of ``left + chunk + right`` feature frames; the contexts default to the
        manifest's ``input.stream_context_frames`` (the model's receptive field), else 16 and 8.
        Fixed-shape models use their manifest's chunking. When the context covers the receptive
        field, the final result equals the offline one. Stateful models (unidirectional
        recurrent layers, ``input.state`` in the manifest) run their manifest's chunks in order,
        carrying the recurrent state from one to the next, so the whole history counts as it
        does offline."""
        if self.manifest.waveform_input:
            # Chunked windows would change what a full-attention encoder sees, and the
            # per-utterance normalisation needs the whole utterance: no streaming equal to offline.
            raise NotImplementedError(
                f"{self.bundle.source}: streaming is not supported for waveform-input bundles "
                "(e.g. wav2vec2); transcribe whole utterances with transcribe()"
            )
        decoder = self._decoder_for(beam, lm, hotwords, lm_weight, word_bonus, grammar, grammar_threshold)
        spec = self.manifest.input_for(self.backend.name)
        sub = self.manifest.subsampling_factor
        needed = spec.stream_context_frames
        if left_context_frames is None:
            left_context_frames = -(-needed // sub) * sub if needed is not None else 16
        if right_context_frames is None:
            right_context_frames = needed if needed is not None else 8
        if spec.chunk_frames is not None:
            chunk_frames, left_context_frames, right_context_frames = (
                spec.chunk_frames,
                spec.left_context_frames,
                spec.right_context_frames,
            )
        return RecognizerStream(
            self,
            decoder,
            chunk_frames,
            left_context_frames,
            right_context_frames,
            fixed_shape=spec.chunk_frames is not None and not spec.state,
            stateful=bool(spec.state),
        )

    # -- internals ------------------------------------------------------------------------
    def _front_end(self, samples: np.ndarray) -> np.ndarray:
        """Samples at the bundle's rate -> the model's input."""
        if self.manifest.waveform_input:
            if self.manifest.input_for(self.backend.name).normalize:
                return features.normalize_waveform(samples)
            return np.ascontiguousarray(samples, dtype=np.float32)
        return self._extractor()(samples)

    def _extractor(self) -> features.FeatureExtractor:
        extractor = getattr(self._per_thread, "extractor", None)
        if extractor is None:
            extractor = self._per_thread.extractor = features.FeatureExtractor(
                self.manifest.features, self.manifest.sample_rate
            )
        return extractor

    def _decoder_for(
        self, beam, lm, hotwords, lm_weight, word_bonus, grammar, grammar_threshold
    ) -> decoding.CTCDecoder:
        if (
            beam is None
            and lm is None
            and hotwords is None
            and grammar is None
            and lm_weight is None
            and word_bonus is None
        ):
            return self._decoder
        if grammar is not None:
            if grammar_threshold is None:
                grammar_threshold = self.manifest.decoder.get("grammar_threshold", 0.5)
            return _grammar_decoder(
                self.manifest.tokens,
                self.manifest.blank_id,
                self.manifest.frame_shift_s,
                _grammar_key(grammar),
                grammar_threshold,
                self.manifest.decoder.get("grammar_token_bonus", 0.0),
                self.manifest.decoder.get("grammar_min_evidence", decoding.GRAMMAR_MIN_EVIDENCE),
            )
        return self._make_decoder(beam or self.beam, lm, hotwords, lm_weight, word_bonus)

    def _make_decoder(self, beam, lm, hotwords, lm_weight, word_bonus) -> decoding.CTCDecoder:
        defaults = self.manifest.decoder
        lexicon = None
        if lm is None:  # the bundle's LM, unless greedy decoding was asked for
            lm = self._bundle_lm if beam > 1 else None
            lexicon = True if lm is not None and defaults.get("lexicon") else None
        elif lm is False:
            lm = None
        else:
            lm = _load_lm(str(lm))
        if (lm is not None or hotwords) and beam < 2:
            beam = 2  # an LM or hotwords need a search, not greedy decoding
        if isinstance(hotwords, (str, Path)):
            hotwords = read_hotwords(hotwords)
        return decoding.CTCDecoder(
            list(self.manifest.tokens),
            blank_id=self.manifest.blank_id,
            beam_width=beam,
            lm=lm,
            lm_weight=defaults.get("lm_weight", _BEAM_DEFAULTS.lm_weight) if lm_weight is None else lm_weight,
            word_bonus=defaults.get("word_bonus", _BEAM_DEFAULTS.word_bonus) if word_bonus is None else word_bonus,
            lexicon=lexicon,
            hotwords=hotwords or None,
            frame_shift_s=self.manifest.frame_shift_s,
        )

    def _transcript(self, result: decoding.Result, duration: float, timings: Mapping[str, float]) -> Transcript:
        tokens = tuple(self.manifest.tokens[i] for i in result.tokens)
        return Transcript(
            text=result.text,
            words=result.words,
            tokens=tokens,
            score=result.score,
            duration_s=duration,
            rtf=sum(timings.values()) / duration if duration else 0.0,
            timings=dict(timings),
            intent=result.intent,
            slots=result.slots,
            confidence=result.confidence,
            nbest=result.nbest,
        )


class RecognizerStream:
    """Streaming recognition; create it with :meth:`Recognizer.create_stream`. Not thread-safe."""

    def __init__(
        self,
        recognizer: Recognizer,
        decoder: decoding.CTCDecoder,
        chunk: int,
        left: int,
        right: int,
        fixed_shape: bool = False,
        stateful: bool = False,
    ):
        sub = recognizer.manifest.subsampling_factor
        if chunk % sub or left % sub:
            raise ValueError(f"chunk and left context must be multiples of the model's subsampling ({sub})")
        self.recognizer = recognizer
        self._rate = recognizer.manifest.sample_rate
        feature_config = recognizer.manifest.features
        if feature_config is None:  # Recognizer.create_stream refuses waveform bundles before this
            raise NotImplementedError("streaming needs a bundle whose model takes features")
        self._features = features.FeatureStream(feature_config, self._rate)
        self._decoder = decoder.create_stream()
        self._chunk, self._left, self._right, self._sub = chunk, left, right, sub
        # Fixed-shape models see whole windows; the last one is aligned to the end, as offline.
        self._fixed_window = left + chunk + right if fixed_shape else None
        self._history = self._fixed_window or left
        # Stateful models: the recurrent state after the decoded chunks (backends.stateful_chunk).
        self._spec = recognizer.manifest.input_for(recognizer.backend.name)
        self._state = recognizer.backend.initial_state() if stateful else None
        if stateful:
            self._history = recognizer.backend.fixed_window or left
        self._pending = np.zeros((0, feature_config.dim), dtype=np.float32)  # context + unrun frames
        self._pending_start = 0  # absolute index of _pending[0]
        self._next_frame = 0  # first feature frame whose outputs are not yet decoded
        self._resampler: Optional[Any] = None  # soxr.ResampleStream once the input rate differs
        self._input_rate: Optional[int] = None
        self._samples = 0
        self._finished = False
        # greedy collapse of the decoded frames (last token, token ids): provisional() extends it
        self._greedy_last = -1
        self._greedy_ids: List[int] = []

    @property
    def partial(self) -> decoding.Result:
        """The decoder's best hypothesis so far. It covers only frames whose right context has
        arrived, so with a wide-context model it lags the audio (see :meth:`provisional`)."""
        return self._decoder.partial

    def provisional(self) -> str:
        """A quick greedy guess at everything heard so far: the decoded frames plus the frames
        still waiting for right context, run now with the context there is. It may change as
        audio arrives, and is meant for early partial results; :meth:`finish` is exact."""
        total = self._pending_start + len(self._pending)
        ids, last = list(self._greedy_ids), self._greedy_last
        if self._state is not None:
            if not self._finished:
                state, done = self._state, self._next_frame
                while True:
                    step = self._stateful_step(done, total, True, state)
                    if step is None:
                        break
                    out, state = step
                    last = self._collapse(out, last, ids)
                    done += self._chunk
            return self.recognizer.vocabulary.text(ids)
        if not self._finished and total > self._next_frame:
            start = max(self._pending_start, self._next_frame - self._left)
            start += (self._next_frame - start) % self._sub  # keep output frames on the same grid
            out = self.recognizer.log_probs_from_features(self._pending[start - self._pending_start :])
            last = self._collapse(out[(self._next_frame - start) // self._sub :], last, ids)
        return self.recognizer.vocabulary.text(ids)

    def _collapse(self, log_probs: np.ndarray, last: int, ids: list) -> int:
        from edge_speech.text import ctc_collapse

        frame_ids = log_probs.argmax(axis=1).tolist() if len(log_probs) else []
        ids.extend(ctc_collapse(frame_ids, self.recognizer.manifest.blank_id, previous=last))
        return frame_ids[-1] if frame_ids else last

    def accept_waveform(self, samples: Any, sample_rate: int) -> None:
        """Adds audio (float or int16, mono) at ``sample_rate``; resampled as needed, statefully."""
        if self._finished:
            raise ValueError("the stream is finished; create a new one")
        if self._input_rate is not None and sample_rate != self._input_rate:
            raise ValueError(f"sample rate changed mid-stream from {self._input_rate} to {sample_rate} Hz")
        x = np.asarray(samples)
        if x.size == 0:
            return
        # checked before the stream takes the rate: a refused chunk (rate 0) once fixed it for good
        x = audio.load_audio((x, sample_rate), int(sample_rate), what="stream chunk")
        self._input_rate = int(sample_rate)
        if self._input_rate != self._rate:
            if self._resampler is None:
                self._resampler = import_soxr().ResampleStream(
                    self._input_rate, self._rate, 1, dtype="float32", quality="HQ"
                )
            x = self._resampler.resample_chunk(x)
        self._samples += len(x)
        self._features.accept(x)
        self._run(final=False)

    def finish(self) -> Transcript:
        """Flushes everything and returns the final transcript (equal to the offline result for
        models whose receptive field fits the context)."""
        if not self._finished:
            if self._resampler is not None:
                tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
                self._samples += len(tail)
                self._features.accept(tail)
            self._features.finish()
            self._run(final=True)
            self._finished = True
            self._final = self._decoder.finish()
        duration = self._samples / self._rate
        return self.recognizer._transcript(self._final, duration, {})

    def _stateful_step(self, done: int, total: int, final: bool, state: dict):
        """(log-probs of the chunk at input frame ``done``, the state after it), or None while
        its window has not arrived."""
        backend = self.recognizer.backend
        cut = stateful_chunk(done, total, final, self._spec, self._sub, backend.fixed_window)
        if cut is None:
            return None
        start, stop, first, end = cut
        window = self._pending[start - self._pending_start : min(stop, total) - self._pending_start]
        out, state = backend.run_chunk(window, first, end, state)
        return (out if self.recognizer.manifest.output_is_log_probs else _log_softmax(out)), state

    def _run(self, final: bool) -> None:
        new = self._features.read()
        if len(new):
            self._pending = np.concatenate([self._pending, new])
        total = self._pending_start + len(self._pending)
        if self._state is not None:
            while True:
                step = self._stateful_step(self._next_frame, total, final, self._state)
                if step is None:
                    return
                out, self._state = step
                self._decoder.accept(out)
                self._greedy_last = self._collapse(out, self._greedy_last, self._greedy_ids)
                self._next_frame += self._chunk
                keep_from = max(0, self._next_frame - self._history)
                self._pending = self._pending[keep_from - self._pending_start :]
                self._pending_start = keep_from
        while True:
            end = self._next_frame + self._chunk
            if not final and end + self._right > total:
                return
            if self._next_frame >= total:
                return
            start = max(0, self._next_frame - self._left)
            stop = min(total, end + self._right)
            if final and self._fixed_window and end >= total:
                padded_total = -(-total // self._sub) * self._sub
                start = max(0, min(start, padded_total - self._fixed_window))
            window = self._pending[start - self._pending_start : stop - self._pending_start]
            out = self.recognizer.log_probs_from_features(window)
            first = (self._next_frame - start) // self._sub
            count = -(-(min(end, total) - self._next_frame) // self._sub)
            self._decoder.accept(out[first : first + count])
            self._greedy_last = self._collapse(out[first : first + count], self._greedy_last, self._greedy_ids)
            self._next_frame = end
            keep_from = max(0, self._next_frame - self._history)
            self._pending = self._pending[keep_from - self._pending_start :]
            self._pending_start = keep_from


def _grammar_key(grammar: Any) -> Any:
    """Something hashable standing for the grammar: its file's text, its text, or the object."""
    if isinstance(grammar, Path) or (
        isinstance(grammar, str)
        and "\n" not in grammar
        and grammar.rsplit(".", 1)[-1].lower() in ("yaml", "yml", "gram", "jsgf")
    ):
        path = Path(grammar)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such grammar file")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".gram", ".jsgf") and not text.lstrip().startswith("#JSGF"):
            text = "#JSGF V1.0;\n" + text
        return text
    if (
        isinstance(grammar, str)
        and "\n" not in grammar
        and ":" not in grammar
        and "=" not in grammar
        and Path(grammar).suffix
    ):  # a one-line string naming a file: never grammar text
        kind = "no such file" if not Path(grammar).exists() else "not a grammar file"
        raise ValueError(
            f"grammar {grammar!r}: {kind}; a grammar is a .yaml/.yml intent file, a .gram/.jsgf "
            "file, a Home Assistant sentences file, or the text of one"
        )
    return grammar


@functools.lru_cache(maxsize=8)
def _grammar_decoder(
    tokens: Tuple[str, ...],
    blank_id: int,
    frame_shift_s: float,
    grammar: Any,
    threshold: float,
    token_bonus: float,
    min_evidence: float,
) -> decoding.CTCDecoder:
    return decoding.CTCDecoder(
        list(tokens),
        blank_id=blank_id,
        grammar=grammar,
        grammar_threshold=threshold,
        grammar_token_bonus=token_bonus,
        grammar_min_evidence=min_evidence,
        frame_shift_s=frame_shift_s,
    )


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _load_lm(path: str) -> decoding.ArpaLM:
    return decoding.ArpaLM.from_file(path)
