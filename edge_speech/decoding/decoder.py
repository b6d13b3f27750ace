"""The CTC decoder facade: one construction path, and the stream that fits its settings."""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence, Tuple, Union

from edge_speech import _native
from edge_speech.decoding.beam import BeamStream
from edge_speech.decoding.config import BeamConfig
from edge_speech.decoding.grammar import GRAMMAR_MIN_EVIDENCE, GrammarSearch, GrammarStream
from edge_speech.decoding.greedy import GreedyStream
from edge_speech.decoding.hotwords import hotword_table
from edge_speech.decoding.lm import ArpaLM
from edge_speech.decoding.results import Result
from edge_speech.decoding.stream import DecoderStream
from edge_speech.decoding.vocabulary import Vocabulary
from edge_speech.grammars import Grammar

__all__ = ["CTCDecoder"]


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

    def __init__(
        self,
        tokens: Union[Sequence[str], Vocabulary],
        blank_id: int = 0,
        beam_width: Optional[int] = None,
        *,
        lm: Optional[ArpaLM] = None,
        lm_weight: Optional[float] = None,
        word_bonus: Optional[float] = None,
        hotwords: Any = None,
        hotword_boost: float = 2.0,
        lexicon: Any = None,
        grammar: Any = None,
        grammar_threshold: float = 0.5,
        grammar_token_bonus: float = 0.0,
        grammar_min_evidence: float = GRAMMAR_MIN_EVIDENCE,
        kind: str = "auto",
        config: Optional[BeamConfig] = None,
        **options: Any,
    ):
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
        self._hotwords = hotword_table(hotwords, hotword_boost)
        self._lexicon = _lexicon_table(lexicon, lm)
        if self.config.beam_width == 1 and (lm is not None or self._hotwords is not None or self._lexicon is not None):
            raise ValueError("beam_width=1 is greedy decoding, which cannot use an LM or hotwords; use beam_width >= 2")
        self.grammar: Optional[Grammar] = None
        self._grammar_search: Optional[GrammarSearch] = None
        if grammar is not None:
            grammar = _as_grammar(grammar)
            if lm is not None or self._hotwords is not None or self._lexicon is not None:
                raise ValueError("a grammar already constrains the words; it cannot be combined with lm or hotwords")
            search = GrammarSearch.create(
                grammar,
                self.vocab,
                grammar_threshold,
                grammar_token_bonus,
                grammar_min_evidence,
                self.config.frame_shift_s,
            )
            self.grammar = grammar
            self.grammar_threshold = search.threshold
            self.grammar_token_bonus = search.token_bonus
            self.grammar_min_evidence = search.min_evidence
            self._grammar_search = search

    @property
    def tokens(self) -> Tuple[str, ...]:
        return self.vocab.tokens

    @property
    def blank_id(self) -> int:
        return self.vocab.blank_id

    def decode(self, log_probs: Any) -> Result:
        """Decodes a whole utterance: ``log_probs`` float32 [T, V] natural-log probabilities."""
        return _decode_all(self.create_stream(), log_probs)

    def decode_greedy(self, log_probs: Any) -> Result:
        """Greedy decoding whatever the beam width: argmax per frame, repeats merged, blanks removed."""
        return _decode_all(GreedyStream(self.vocab, self.config.frame_shift_s), log_probs)

    def create_stream(self) -> DecoderStream:
        """A stream that accepts log-prob chunks of any size; its final result equals decode()."""
        if self._grammar_search is not None:
            return GrammarStream(self._grammar_search)
        if self.config.beam_width == 1:
            return GreedyStream(self.vocab, self.config.frame_shift_s)
        return BeamStream(self.vocab, self.config, self.lm, self._hotwords, self._lexicon)


def _decode_all(stream: DecoderStream, log_probs: Any) -> Result:
    stream.accept(log_probs)
    return stream.finish()


def _lexicon_table(lexicon: Any, lm: Optional[ArpaLM]) -> Any:
    """The native lexicon: True takes the LM's words, an iterable lists them; None/False: none."""
    if lexicon is None or lexicon is False:
        return None
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
    return _native.Lexicon(words)


def _as_grammar(grammar: Any) -> Grammar:
    """A Grammar, compiling JSGF or intent-YAML text."""
    if isinstance(grammar, str):
        is_jsgf = grammar.lstrip().startswith("#JSGF") or ("<" in grammar and "=" in grammar)
        grammar = Grammar.from_jsgf(grammar) if is_jsgf else Grammar.from_yaml(grammar)
    if not isinstance(grammar, Grammar):
        raise TypeError(f"grammar must be a Grammar (or JSGF / intent YAML text), got {type(grammar).__name__}")
    return grammar
