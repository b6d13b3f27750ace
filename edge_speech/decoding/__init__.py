"""CTC decoding in the native core: greedy, prefix beam search, ARPA n-gram LM fusion, hotwords.

A CTC model gives, per frame, natural-log probabilities over its tokens (blank included). The
decoder turns them into text, tokens with frame timestamps, and words with times::

    from edge_speech import decoding
    dec = decoding.CTCDecoder(tokens, blank_id=0, beam_width=16)
    res = dec.decode(log_probs)                 # float32 [T, V]
    res.text, res.tokens, res.score, res.words, res.nbest

    lm = decoding.ArpaLM.from_file("words.arpa")
    dec = decoding.CTCDecoder(tokens, lm=lm, lm_weight=0.5, word_bonus=1.0,
                              hotwords={"edge speech": 4.0})

    stream = dec.create_stream()                # the same result, chunk by chunk
    stream.accept(chunk); stream.partial; res = stream.finish()

    grammar = decoding.Grammar.from_yaml(intents_yaml)     # or Grammar.from_jsgf(text)
    dec = decoding.CTCDecoder(tokens, grammar=grammar)     # grammar_threshold=0.5, grammar_min_evidence=0.55
    res = dec.decode(log_probs)
    res.intent, res.slots, res.text, res.confidence        # intent None: rejected

Tokens are characters (``" "`` or ``"|"`` separate words) or SentencePiece-style subwords (a
``"▁"`` prefix begins a word); ``kind="auto"`` tells them apart. ``beam_width=1`` selects greedy
decoding (the argmax path, repeats merged, blanks removed). Decoders hold no global state: use one
stream per thread, as many threads as you like (the native work releases the GIL); an ``ArpaLM``
may be shared by any number of decoders.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from edge_speech import _native
from edge_speech.decoding.config import BeamConfig
from edge_speech.grammars import Grammar

__all__ = [
    "ArpaLM",
    "BeamConfig",
    "CTCDecoder",
    "DecoderStream",
    "Grammar",
    "Hypothesis",
    "Result",
    "Vocabulary",
    "Word",
]

_KINDS = {"auto": 0, "chars": 1, "sentencepiece": 2}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}
_WORD_START, _SEPARATOR, _BLANK = 2, 4, 1
_TOKEN_DTYPE = np.dtype([("id", "<i4"), ("log_prob", "<f4"), ("frame", "<i8")])
_ARC_DTYPE = np.dtype([("src", "<i4"), ("dst", "<i4"), ("token", "<i4"), ("weight", "<f4"), ("label", "<i4")])
_STEP_DTYPE = np.dtype({"names": ["arc", "token", "label", "frame"], "formats": ["<i4", "<i4", "<i4", "<i8"],
                        "offsets": [0, 4, 8, 16], "itemsize": 24})


# -- results ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Word:
    """A decoded word: text, start/end in seconds (model frame rate), confidence in [0, 1].

    ``start`` is the first token's frame, ``end`` one frame past the last token's frame; the
    confidence is the geometric mean of the word's token probabilities at their frames."""

    text: str
    start: float
    end: float
    confidence: float
    start_frame: int
    end_frame: int


@dataclasses.dataclass(frozen=True)
class Hypothesis:
    """One entry of the n-best list. ``score`` = ``acoustic_score`` + lm_weight * ``lm_score``
    + word_bonus * words + hotword credit (natural log)."""

    text: str
    tokens: Tuple[int, ...]
    score: float
    acoustic_score: float
    lm_score: float


@dataclasses.dataclass(frozen=True)
class Result:
    """A decoding result. ``tokens`` are token ids, ``token_frames`` the absolute frame at which
    each was emitted. ``nbest`` holds the ranked hypotheses (the first is this one).

    With a grammar: ``intent`` and ``slots`` (``{"room": "kitchen"}``) of the best in-grammar
    sentence, and ``confidence`` in [0, 1]: exp of the per-token log-ratio between the best
    in-grammar alignment and the best unconstrained one, scaled down when the speech evidence
    falls short (see :class:`CTCDecoder`'s ``grammar_min_evidence``). Below the decoder's
    ``grammar_threshold``, or short of evidence, the result is a rejection: ``intent`` and
    ``slots`` are None and ``text`` is empty, while ``nbest[0]`` still shows the closest
    in-grammar sentence. Grammar words carry the utterance confidence."""

    text: str
    tokens: Tuple[int, ...]
    token_frames: Tuple[int, ...]
    score: float
    acoustic_score: float
    lm_score: float
    words: Tuple[Word, ...]
    nbest: Tuple[Hypothesis, ...]
    intent: Optional[str] = None
    slots: Optional[Mapping[str, str]] = None
    confidence: Optional[float] = None


# -- vocabulary --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Token strings, the blank id, and the word boundaries they imply (``kind`` resolved)."""

    tokens: Tuple[str, ...]
    blank_id: int = 0
    kind: str = "auto"

    def __post_init__(self) -> None:
        tokens = self.tokens
        if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Iterable):
            raise TypeError("tokens must be a sequence of str")
        tokens = tuple(tokens)
        if not tokens:
            raise ValueError("tokens is empty; a CTC vocabulary needs at least the blank")
        for i, t in enumerate(tokens):
            if not isinstance(t, str):
                raise TypeError(f"tokens[{i}] must be a str, got {type(t).__name__}")
        object.__setattr__(self, "tokens", tokens)
        if isinstance(self.blank_id, bool) or not isinstance(self.blank_id, numbers.Integral):
            raise TypeError(f"blank_id must be an int, got {self.blank_id!r}")
        if not 0 <= self.blank_id < len(tokens):
            raise ValueError(f"blank_id {self.blank_id} is outside the vocabulary of {len(tokens)} tokens")
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {self.kind!r}")
        kind, flags, texts = _native.vocab_info(list(tokens), int(self.blank_id), _KINDS[self.kind])
        object.__setattr__(self, "blank_id", int(self.blank_id))
        object.__setattr__(self, "kind", _KIND_NAMES[kind])
        object.__setattr__(self, "_flags", bytes(flags))
        object.__setattr__(self, "_texts", tuple(texts))

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def from_file(cls, path: "str | Path", blank_id: Optional[int] = None, kind: str = "auto") -> "Vocabulary":
        """Reads ``tokens.txt``: one token per line, optionally followed by its id (sherpa/k2
        style ``"a 3"``). ``blank_id`` defaults to the line ``<blk>``/``<blank>``/``<pad>``, else 0."""
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        entries = []
        for number, line in enumerate(lines, 1):
            if not line.strip() and line != " ":
                continue
            parts = line.rsplit(" ", 1)
            if len(parts) == 2 and parts[1].isdigit() and parts[0] != "":
                entries.append((int(parts[1]), parts[0]))
            else:
                entries.append((len(entries), line))
        ids = sorted(i for i, _ in entries)
        if ids != list(range(len(entries))):
            raise ValueError(f"{path}: token ids must be 0..{len(entries) - 1} without gaps")
        tokens = [t for _, t in sorted(entries)]
        if blank_id is None:
            blank_id = next((i for i, t in enumerate(tokens) if t in ("<blk>", "<blank>", "<pad>")), 0)
        return cls(tuple(tokens), blank_id, kind)

    def text(self, ids: Iterable[int]) -> str:
        """The text of a token sequence: one space per word boundary, none at the ends."""
        return " ".join(w for w, _ in self._words([(int(i), 0, 0.0) for i in ids]))

    def _words(self, toks: Sequence[Tuple[int, int, float]]) -> List[Tuple[str, List[Tuple[int, int, float]]]]:
        words: List[Tuple[str, List[Tuple[int, int, float]]]] = []
        text, members, boundary = "", [], True
        flags_of, texts = self._flags, self._texts
        for tok in toks:
            flags, piece = flags_of[tok[0]], texts[tok[0]]
            if flags & _BLANK:
                continue
            if flags & _WORD_START:
                boundary = True
            if not piece:
                continue
            if boundary and text:
                words.append((text, members))
                text, members = "", []
            boundary = False
            text += piece
            members.append(tok)
        if text:
            words.append((text, members))
        return words


# -- language model and hotwords ------------------------------------------------------------------

class ArpaLM:
    """A word n-gram LM from an ARPA file, held in the native core (sorted arrays, backoff).

    Malformed files raise ValueError naming the line. Read-only once built: share one between
    decoders and threads."""

    def __init__(self, text: Union[str, bytes]):
        if isinstance(text, str):
            text = text.encode("utf-8")
        if not isinstance(text, (bytes, bytearray, memoryview)):
            raise TypeError(f"ArpaLM takes ARPA text (str or bytes), got {type(text).__name__}; "
                            "use ArpaLM.from_file(path) for a file")
        self._lm = _native.ArpaLM(bytes(text))

    @classmethod
    def from_file(cls, path: "str | Path") -> "ArpaLM":
        """An ARPA file, plain or gzip-compressed (recognised by its magic bytes, not its name)."""
        from edge_speech import limits

        path = Path(path)
        if path.is_file() and path.stat().st_size > limits.current().max_lm_bytes:
            raise limits.exceeded(f"{path}: size", f"{path.stat().st_size} bytes", "max_lm_bytes")
        data = limits.gunzip(path.read_bytes(), str(path), "max_lm_bytes")
        try:
            return cls(data)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    @property
    def order(self) -> int:
        return self._lm.order

    @property
    def words(self) -> Tuple[str, ...]:
        """The unigrams (``<s>``, ``</s>``, ``<unk>`` included when present)."""
        return tuple(self._lm.words)

    @property
    def counts(self) -> Tuple[int, ...]:
        """How many n-grams of each order."""
        return tuple(self._lm.counts)

    def score(self, words: Sequence[str], bos: bool = True, eos: bool = True) -> List[float]:
        """log10 p(word | history) for each word (and ``</s>`` last if eos and the model has it)."""
        if isinstance(words, str):
            words = words.split()
        return self._lm.score_words([str(w) for w in words], bool(bos), bool(eos))


# A boost is added to a float32 log-probability score per token: 3e38 was accepted and the beam
# returned garbage. 100 nats per token already outweighs any acoustic evidence.
MAX_HOTWORD_BOOST = 100.0


def _hotword_table(hotwords: Any, default_boost: float) -> Optional[Any]:
    if hotwords is None:
        return None
    if isinstance(hotwords, str):
        raise TypeError("hotwords must be a dict {phrase: boost}, or a list of phrases or (phrase, boost) pairs")
    items = list(hotwords.items()) if isinstance(hotwords, Mapping) else [
        (h, default_boost) if isinstance(h, str) else tuple(h) for h in hotwords]
    phrases, boosts = [], []
    for item in items:
        if len(item) != 2 or not isinstance(item[0], str):
            raise TypeError(f"hotword entries must be (phrase, boost), got {item!r}")
        phrase, boost = item
        if not phrase.split():
            raise ValueError("a hotword phrase is empty")
        if (isinstance(boost, bool) or not isinstance(boost, numbers.Real)
                or not (math.isfinite(boost) and 0 < boost <= MAX_HOTWORD_BOOST)):
            raise ValueError(f"hotword {phrase!r} has boost {boost!r}; boosts must be in (0, {MAX_HOTWORD_BOOST:g}] "
                             "(log-probability added per token; past that, scores lose all precision)")
        phrases.append(" ".join(phrase.split()))
        boosts.append(float(boost))
    if not phrases:
        return None
    return _native.Hotwords(phrases, boosts)


# -- the decoder ------------------------------------------------------------------------------------

# Commands' greedy decodings spell 0.86-1.05x their tokens even at 10 dB SNR; noise 0-0.1x, music
# 2.5-6.5x (benchmarks/bench_vad_session.py). 0.6 lost 1 of 60 held-out commands at 20 dB.
GRAMMAR_MIN_EVIDENCE = 0.55


class CTCDecoder:
    """CTC decoding over a token vocabulary; see the module docstring.

    ``tokens``: a sequence of token strings or a :class:`Vocabulary`. Keyword options are the
    :class:`BeamConfig` fields (or pass ``config=``), plus ``lm`` (an :class:`ArpaLM`),
    ``hotwords`` (``{phrase: boost}``, or phrases that get ``hotword_boost``), ``lexicon``
    (True: the LM's words, or an iterable of words: only these are output, or with
    ``oov_penalty < 0`` others pay that penalty), ``kind``, and
    ``grammar`` (a :class:`Grammar`, or JSGF / intent-YAML text) with ``grammar_threshold`` and
    ``grammar_token_bonus`` (added per spelled token when ranking sentences, so short ones are not
    favoured; left out of scores and confidences): a grammar replaces the beam search by a
    Viterbi search constrained to its sentences.

    ``grammar_min_evidence`` (in [0, 1], 0 = off) asks for speech evidence behind a command: the
    unconstrained (greedy) decoding of the same frames must emit between ``grammar_min_evidence``
    and ``1 / grammar_min_evidence`` times as many tokens (word separators aside) as the command
    spells. Noise leaves the model on blank (a few tokens where the command needs many) and
    music makes it babble (many more), while a spoken command, even at 10 dB SNR, gives about as
    many as it spells; the confidence only compares the in-grammar path with the free one, which
    on near-silent posteriors can be close (the default 0.55 keeps every command of the default
    model's held-out voices at 20 dB SNR, ratio >= 0.56, and rejects a one-token guess at a
    two-token word). A result outside the range is rejected, its
    confidence scaled down by the shortfall and kept below the threshold. With
    ``grammar_threshold=0`` nothing is rejected (the confidence is still scaled).
    """

    def __init__(self, tokens: Union[Sequence[str], Vocabulary], blank_id: int = 0, beam_width: Optional[int] = None,
                 *, lm: Optional[ArpaLM] = None, lm_weight: Optional[float] = None,
                 word_bonus: Optional[float] = None, hotwords: Any = None, hotword_boost: float = 2.0,
                 lexicon: Any = None,
                 grammar: Any = None, grammar_threshold: float = 0.5, grammar_token_bonus: float = 0.0,
                 grammar_min_evidence: float = GRAMMAR_MIN_EVIDENCE, kind: str = "auto",
                 config: Optional[BeamConfig] = None, **options: Any):
        self.vocab = tokens if isinstance(tokens, Vocabulary) else Vocabulary(tuple(tokens), blank_id, kind)
        if config is not None and not isinstance(config, BeamConfig):
            raise TypeError(f"config must be a BeamConfig, got {type(config).__name__}")
        changes = dict(options)
        for name, value in (("beam_width", beam_width), ("lm_weight", lm_weight), ("word_bonus", word_bonus)):
            if value is not None:
                changes[name] = value
        self.config = (config or BeamConfig()).replace(**changes)
        if lm is not None and not isinstance(lm, ArpaLM):
            raise TypeError(f"lm must be an ArpaLM, got {type(lm).__name__}")
        self.lm = lm
        self._hotwords = _hotword_table(hotwords, hotword_boost)
        self._lexicon = None
        if lexicon is not None and lexicon is not False:
            if lexicon is True:
                if lm is None:
                    raise ValueError("lexicon=True takes the LM's words; pass an lm, or a list of words as lexicon")
                words = [w for w in lm.words if w not in ("<s>", "</s>", "<unk>")]
            elif isinstance(lexicon, str) or not isinstance(lexicon, Iterable):
                raise TypeError("lexicon must be True (the LM's words) or an iterable of words")
            else:
                words = [str(w) for w in lexicon]
            if not words:
                raise ValueError("the lexicon has no words")
            self._lexicon = _native.Lexicon(words)
        if self.config.beam_width == 1 and (lm is not None or self._hotwords is not None or self._lexicon is not None):
            raise ValueError("beam_width=1 is greedy decoding, which cannot use an LM or hotwords; use beam_width >= 2")
        self.grammar: Optional[Grammar] = None
        if grammar is not None:
            if isinstance(grammar, str):
                is_jsgf = grammar.lstrip().startswith("#JSGF") or ("<" in grammar and "=" in grammar)
                grammar = Grammar.from_jsgf(grammar) if is_jsgf else Grammar.from_yaml(grammar)
            if not isinstance(grammar, Grammar):
                raise TypeError(f"grammar must be a Grammar (or JSGF / intent YAML text), got {type(grammar).__name__}")
            if lm is not None or self._hotwords is not None or self._lexicon is not None:
                raise ValueError("a grammar already constrains the words; it cannot be combined with lm or hotwords")
            if isinstance(grammar_threshold, bool) or not isinstance(grammar_threshold, numbers.Real) or \
                    not 0 <= grammar_threshold <= 1:
                raise ValueError(f"grammar_threshold must be in [0, 1], got {grammar_threshold!r}")
            if isinstance(grammar_token_bonus, bool) or not isinstance(grammar_token_bonus, numbers.Real) or \
                    not math.isfinite(grammar_token_bonus):
                raise ValueError(f"grammar_token_bonus must be a finite number, got {grammar_token_bonus!r}")
            if isinstance(grammar_min_evidence, bool) or not isinstance(grammar_min_evidence, numbers.Real) or \
                    not 0 <= grammar_min_evidence <= 1:
                raise ValueError(f"grammar_min_evidence must be in [0, 1], got {grammar_min_evidence!r}")
            self.grammar = grammar
            self.grammar_threshold = float(grammar_threshold)
            self.grammar_token_bonus = float(grammar_token_bonus)
            self.grammar_min_evidence = float(grammar_min_evidence)
            self._spelling = np.array([not flags & (_SEPARATOR | _BLANK) for flags in self.vocab._flags])
            self._grammar_graph = _compile_grammar(grammar, self.vocab, self.grammar_token_bonus)

    @property
    def tokens(self) -> Tuple[str, ...]:
        return self.vocab.tokens

    @property
    def blank_id(self) -> int:
        return self.vocab.blank_id

    def decode(self, log_probs: Any) -> Result:
        """Decodes a whole utterance: ``log_probs`` float32 [T, V] natural-log probabilities."""
        stream = self.create_stream()
        stream.accept(log_probs)
        return stream.finish()

    def decode_greedy(self, log_probs: Any) -> Result:
        """Greedy decoding whatever the beam width: argmax per frame, repeats merged, blanks removed."""
        stream = DecoderStream(self, greedy=True)
        stream.accept(log_probs)
        return stream.finish()

    def create_stream(self) -> "DecoderStream":
        """A stream that accepts log-prob chunks of any size; its final result equals decode()."""
        return DecoderStream(self, greedy=self.config.beam_width == 1 and self.grammar is None)

    def _new_grammar_decoder(self) -> Any:
        arcs, num_states, finals, _labels = self._grammar_graph
        return _native.GrammarDecoder(arcs.tobytes(), num_states, 0, finals.tobytes(), len(self.vocab),
                                      self.vocab.blank_id)

    def _new_beam(self) -> Any:
        return _native.CTCBeam(list(self.vocab.tokens), self.vocab.blank_id, _KINDS[self.vocab.kind],
                               self.config._native(), None if self.lm is None else self.lm._lm, self._hotwords,
                               self._lexicon)

    def _log_probs(self, log_probs: Any) -> np.ndarray:
        array = np.asarray(log_probs)
        if array.dtype.kind not in "fiu":
            raise TypeError(f"log_probs must be a float array, got {array.dtype}")
        if array.ndim != 2:
            raise ValueError(f"log_probs must be 2-D [frames, vocab], got shape {array.shape}")
        if array.shape[1] != len(self.vocab):
            raise ValueError(f"log_probs has {array.shape[1]} columns but the vocabulary has {len(self.vocab)} tokens")
        return np.ascontiguousarray(array, dtype=np.float32)  # NaN / +inf are refused by the native code


class DecoderStream:
    """Streaming decoding: :meth:`accept` chunks, read :attr:`partial`, then :meth:`finish`.
    Not thread-safe: one stream per thread."""

    def __init__(self, decoder: CTCDecoder, greedy: bool = False):
        self._decoder = decoder
        self._greedy = greedy
        self._grammar = decoder._new_grammar_decoder() if decoder.grammar is not None else None
        self._beam = None if greedy or self._grammar is not None else decoder._new_beam()
        self._result: Optional[Result] = None
        self.reset()

    @property
    def frames_done(self) -> int:
        return self._frames

    @property
    def finished(self) -> bool:
        return self._result is not None

    def reset(self) -> None:
        """Forgets all input; the next chunk starts a new utterance."""
        self._frames = 0
        self._result = None
        if self._greedy:
            self._previous = -1
            self._path = 0.0
            self._tokens: List[np.ndarray] = []
        elif self._grammar is not None:
            self._grammar.reset()
            self._free_previous, self._free_tokens = -1, 0  # the greedy decoding's token count: evidence
        else:
            self._beam.reset()

    def accept(self, chunk: Any) -> None:
        """Adds frames: float32 [n, V] log-probs (n may be 0)."""
        if self._result is not None:
            raise ValueError("stream already finished; call reset() before new input")
        chunk = self._decoder._log_probs(chunk)
        if self._greedy:
            data, self._previous, self._path = _native.ctc_greedy(
                chunk, chunk.shape[1], self._decoder.blank_id, self._previous, self._frames, self._path)
            if len(data):
                self._tokens.append(np.frombuffer(data, dtype=_TOKEN_DTYPE))
        elif self._grammar is not None:
            self._grammar.accept(chunk)
            if len(chunk):
                best = chunk.argmax(axis=1)
                new = best != np.concatenate([[self._free_previous], best[:-1]])
                self._free_tokens += int(np.count_nonzero(new & self._decoder._spelling[best]))
                self._free_previous = int(best[-1])
        else:
            self._beam.accept(chunk)
        self._frames += chunk.shape[0]

    @property
    def partial(self) -> Result:
        """The best hypothesis so far (without the end-of-utterance LM score)."""
        if self._result is not None:
            return self._result
        return self._make_result()

    def finish(self) -> Result:
        """Ends the utterance and returns the final result (again on later calls)."""
        if self._result is None:
            if self._beam is not None:
                self._beam.finish()
            self._result = self._make_result()
        return self._result

    def _make_result(self) -> Result:
        if self._grammar is not None:
            return self._grammar_result()
        vocab, shift = self._decoder.vocab, self._decoder.config.frame_shift_s
        if self._greedy:
            toks = np.concatenate(self._tokens) if self._tokens else np.zeros(0, _TOKEN_DTYPE)
            acoustic = self._path  # the argmax path's log-prob
            entries = [(toks, acoustic, acoustic, 0.0)]
        else:
            entries = []
            for data, total, acoustic, lm, _hotword, _words in self._beam.hypotheses(self._decoder.config.nbest):
                if math.isfinite(total) or not entries:  # a lexicon can rule hypotheses out
                    entries.append((np.frombuffer(data, dtype=_TOKEN_DTYPE), total, acoustic, lm))
            if not math.isfinite(entries[0][1]):
                entries = [(np.zeros(0, _TOKEN_DTYPE), -math.inf, -math.inf, 0.0)]
        nbest = []
        for k, (t, total, acoustic, lm) in enumerate(entries):
            ids = tuple(t["id"].tolist())
            if k == 0:
                triples = list(zip(ids, t["frame"].tolist(), t["log_prob"].tolist()))
                grouped = vocab._words(triples)
                text = " ".join(w for w, _ in grouped)
            else:
                text = vocab.text(ids)
            nbest.append(Hypothesis(text, ids, float(total), float(acoustic), float(lm)))
        toks, total, acoustic, lm = entries[0]
        words = []
        for text, members in grouped:
            first, last = members[0][1], members[-1][1]
            confidence = math.exp(sum(m[2] for m in members) / len(members))
            words.append(Word(text, first * shift, (last + 1) * shift, min(1.0, confidence), first, last + 1))
        return Result(
            text=nbest[0].text, tokens=nbest[0].tokens, token_frames=tuple(toks["frame"].tolist()),
            score=float(total), acoustic_score=float(acoustic), lm_score=float(lm), words=tuple(words),
            nbest=tuple(nbest))

    def _grammar_result(self) -> Result:
        dec = self._decoder
        shift = dec.config.frame_shift_s
        data, score, free_score = self._grammar.result()
        steps = np.frombuffer(data, dtype=_STEP_DTYPE)
        labels = dec._grammar_graph[3]
        found = bool(len(steps)) and math.isfinite(score)
        # the token bonus ranks sentences of different lengths fairly; it is not acoustic evidence
        spelled = sum(1 for t in steps["token"].tolist() if not dec.vocab._flags[t] & _SEPARATOR) if found else 0
        score -= dec.grammar_token_bonus * spelled
        # confidence: the per-token ratio of the in-grammar path to the free-running best path
        confidence = math.exp(min(0.0, score - free_score) / (len(steps) + 1)) if found else 0.0
        # speech evidence: the free decoding emits about as many tokens as the command spells
        shortfall = 1.0
        if found and spelled and dec.grammar_min_evidence > 0:
            ratio = self._free_tokens / spelled
            shortfall = min(1.0, ratio / dec.grammar_min_evidence, 1.0 / (dec.grammar_min_evidence * ratio or 1e-9))
            confidence *= shortfall
            if shortfall < 1.0 and dec.grammar_threshold > 0:  # rejected: below the threshold too
                confidence = min(confidence, dec.grammar_threshold * shortfall)
        words, intent, slots = [], None, {}
        starts = [i for i, label in enumerate(steps["label"]) if label >= 0]
        for k, i in enumerate(starts):
            intent, word, slot = labels[int(steps["label"][i])]
            last = (starts[k + 1] if k + 1 < len(starts) else len(steps)) - 1
            while last > i and steps["label"][last] < 0 and dec.vocab._flags[int(steps["token"][last])] & _SEPARATOR:
                last -= 1
            first_frame, end_frame = int(steps["frame"][i]), int(steps["frame"][last]) + 1
            words.append(Word(word, first_frame * shift, end_frame * shift, confidence, first_frame, end_frame))
            if slot is not None:
                slots[slot] = f"{slots[slot]} {word}" if slot in slots else word
        text = " ".join(w.text for w in words)
        tokens = tuple(int(t) for t in steps["token"])
        accepted = found and confidence >= dec.grammar_threshold and (shortfall == 1.0 or dec.grammar_threshold == 0)
        if accepted and starts:  # e.g. Home Assistant sentences: list `out` values, range numbers
            interpreted = dec.grammar.interpret([labels[int(steps["label"][i])] for i in starts])
            if interpreted is not None:
                intent, slots = interpreted
        hyp = Hypothesis(text, tokens, float(score), float(score), 0.0)
        return Result(
            text=text if accepted else "", tokens=tokens if accepted else (),
            token_frames=tuple(int(f) for f in steps["frame"]) if accepted else (),
            score=float(score), acoustic_score=float(score), lm_score=0.0,
            words=tuple(words) if accepted else (), nbest=(hyp,) if found else (),
            intent=intent if accepted else None, slots=dict(slots) if accepted else None, confidence=confidence)


def _spell(word: str, vocab: Vocabulary, pieces: Dict[str, int], starts: Dict[str, int]) -> List[int]:
    """The token ids that spell a grammar word (greedy longest match)."""
    if vocab.kind == "chars":
        out = []
        for ch in word:
            for candidate in (ch, ch.upper(), ch.lower()):
                if candidate in pieces:
                    out.append(pieces[candidate])
                    break
            else:
                raise ValueError(f"the grammar word {word!r} has {ch!r}, which the vocabulary cannot spell")
        return out
    out, pos, first = [], 0, True
    variants = (word, word.upper(), word.lower())
    for text in variants:
        out, pos, first = [], 0, True
        while pos < len(text):
            table = starts if first else pieces
            for end in range(len(text), pos, -1):
                if text[pos:end] in table:
                    out.append(table[text[pos:end]])
                    pos, first = end, False
                    break
            else:
                if first and "" in starts:  # a lone word marker, then plain pieces
                    out.append(starts[""])
                    first = False
                    continue
                break
        if pos == len(text):
            return out
    raise ValueError(f"the grammar word {word!r} cannot be spelled with the vocabulary's pieces")


def _compile_grammar(grammar: Grammar, vocab: Vocabulary, token_bonus: float = 0.0):
    """Token automaton: each word arc becomes a chain of token arcs (the word's label on the first);
    word separators may appear any number of times between words (self-loops). Every spelled
    token earns ``token_bonus``: CTC scores favour short sentences (fewer tokens to emit, more
    frames left to blank), which a bonus per token evens out."""
    pieces: Dict[str, int] = {}
    starts: Dict[str, int] = {}
    separators = []
    for i, (flags, text) in enumerate(zip(vocab._flags, vocab._texts)):
        if flags & _BLANK:
            continue
        if flags & _SEPARATOR:
            separators.append(i)
            if vocab.kind == "sentencepiece":
                starts.setdefault("", i)
            continue
        if vocab.kind == "sentencepiece" and flags & _WORD_START:
            starts.setdefault(text, i)
        else:
            pieces.setdefault(text, i)
    labels: List[Tuple[str, str, Optional[str]]] = []
    label_ids: Dict[Tuple[str, str, Optional[str]], int] = {}
    rows = []
    num_states = grammar.num_states
    spelled: Dict[str, List[int]] = {}
    for arc in grammar.arcs:
        ids = spelled.get(arc.word)
        if ids is None:
            ids = spelled[arc.word] = _spell(arc.word, vocab, pieces, starts)
        key = (arc.intent, arc.word, arc.slot)
        label = label_ids.setdefault(key, len(labels))
        if label == len(labels):
            labels.append(key)
        src = arc.src
        for k, tok in enumerate(ids):
            dst = arc.dst if k == len(ids) - 1 else num_states
            if k < len(ids) - 1:
                num_states += 1
            rows.append((src, dst, tok, (arc.weight if k == 0 else 0.0) + token_bonus, label if k == 0 else -1))
            src = dst
    for state in range(grammar.num_states):
        for tok in separators:
            rows.append((state, state, tok, 0.0, -1))
    arcs = np.array(rows, dtype=_ARC_DTYPE)
    return arcs, num_states, np.array(grammar.finals, dtype=np.int32), labels
