"""A word grammar spelled with a CTC model's tokens: the automaton the grammar decoder searches."""

from __future__ import annotations

import dataclasses
from array import array
from typing import Dict, List, Optional, Protocol, Sequence, Tuple

import numpy as np

__all__ = ["ARC_DTYPE", "TokenGraph", "compile_tokens", "spell"]

# one token arc as the native grammar decoder reads it; label >= 0 on a word's first token
ARC_DTYPE = np.dtype([("src", "<i4"), ("dst", "<i4"), ("token", "<i4"), ("weight", "<f4"), ("label", "<i4")])

# (intent, word, slot) of a word arc
Label = Tuple[str, str, Optional[str]]


class TokenVocabulary(Protocol):
    """What spelling needs of :class:`edge_speech.decoding.Vocabulary`."""

    kind: str

    @property
    def pieces(self) -> Sequence[str]: ...

    def is_blank(self, token_id: int) -> bool: ...

    def is_separator(self, token_id: int) -> bool: ...

    def starts_word(self, token_id: int) -> bool: ...


@dataclasses.dataclass(frozen=True, eq=False)  # arrays: compare the fields, not the graphs
class TokenGraph:
    """Token arcs (:data:`ARC_DTYPE`) over ``num_states`` states, state 0 the start; ``labels[i]``
    is the (intent, word, slot) of arcs labelled i."""

    arcs: np.ndarray
    num_states: int
    finals: np.ndarray  # int32 state ids
    labels: Tuple[Label, ...]


@dataclasses.dataclass(frozen=True)
class _SpellingTables:
    pieces: Dict[str, int]  # text -> token continuing a word (every token for characters)
    starts: Dict[str, int]  # text -> token beginning a word (SentencePiece); "" a lone marker
    separators: Tuple[int, ...]


def _spelling_tables(vocab: TokenVocabulary) -> _SpellingTables:
    pieces: Dict[str, int] = {}
    starts: Dict[str, int] = {}
    separators = []
    subwords = vocab.kind == "sentencepiece"
    for i, text in enumerate(vocab.pieces):
        if vocab.is_blank(i):
            continue
        if vocab.is_separator(i):
            separators.append(i)
            if subwords:
                starts.setdefault("", i)
            continue
        if subwords and vocab.starts_word(i):
            starts.setdefault(text, i)
        else:
            pieces.setdefault(text, i)
    return _SpellingTables(pieces, starts, tuple(separators))


def spell(word: str, vocab: TokenVocabulary, tables: Optional[_SpellingTables] = None) -> List[int]:
    """The token ids that spell a grammar word (greedy longest match, as written, upper or lower case)."""
    tables = tables or _spelling_tables(vocab)
    pieces, starts = tables.pieces, tables.starts
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
    for text in (word, word.upper(), word.lower()):
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


def compile_tokens(grammar, vocab: TokenVocabulary, token_bonus: float = 0.0) -> TokenGraph:
    """Spells a :class:`~edge_speech.grammars.Grammar` with the vocabulary's tokens: each word arc
    becomes a chain of token arcs (the word's label on the first); word separators may appear any
    number of times between words (self-loops). Every spelled token earns ``token_bonus``: CTC
    scores favour short sentences (fewer tokens to emit, more frames left to blank), which a
    bonus per token evens out. A word the tokens cannot spell is a ValueError naming it."""
    tables = _spelling_tables(vocab)
    labels: List[Label] = []
    label_ids: Dict[Label, int] = {}
    # columns, not a row tuple per token arc: a grammar near max_grammar_arcs has millions
    srcs, dsts, tokens, labels_of = array("i"), array("i"), array("i"), array("i")
    weights = array("d")
    num_states = grammar.num_states
    spelled: Dict[str, List[int]] = {}
    for arc in grammar.arcs:
        ids = spelled.get(arc.word)
        if ids is None:
            ids = spelled[arc.word] = spell(arc.word, vocab, tables)
        key = (arc.intent, arc.word, arc.slot)
        label = label_ids.setdefault(key, len(labels))
        if label == len(labels):
            labels.append(key)
        src = arc.src
        for k, tok in enumerate(ids):
            dst = arc.dst if k == len(ids) - 1 else num_states
            if k < len(ids) - 1:
                num_states += 1
            srcs.append(src)
            dsts.append(dst)
            tokens.append(tok)
            weights.append((arc.weight if k == 0 else 0.0) + token_bonus)
            labels_of.append(label if k == 0 else -1)
            src = dst
    for state in range(grammar.num_states):
        for tok in tables.separators:
            srcs.append(state)
            dsts.append(state)
            tokens.append(tok)
            weights.append(0.0)
            labels_of.append(-1)
    arcs = np.empty(len(srcs), dtype=ARC_DTYPE)
    for name, column in (("src", srcs), ("dst", dsts), ("token", tokens), ("weight", weights), ("label", labels_of)):
        arcs[name] = np.frombuffer(column, dtype=column.typecode) if len(column) else 0
    return TokenGraph(arcs, num_states, np.array(grammar.finals, dtype=np.int32), tuple(labels))
