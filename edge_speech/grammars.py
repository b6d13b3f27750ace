"""Command grammars: JSGF (a subset) and YAML intent templates, compiled to word automata.

A :class:`Grammar` is a word-level automaton whose arcs know their intent and slot. The decoder
(``decoding.CTCDecoder(tokens, grammar=g)``) spells it with the model's tokens and searches it.

JSGF subset: ``#JSGF V1.0;`` and ``grammar name;`` headers, ``public <rule> = ...;`` and private
rules, alternatives ``|`` with optional weights ``/2.5/``, groups ``( )``, optional ``[ ]``, rule
references ``<rule>``, repetition ``*`` and ``+``, quoted tokens, ``//`` and ``/* */`` comments;
tags ``{...}`` are accepted and ignored; ``import`` is not supported. Each public rule is an
intent named after it; JSGF results have no slots.

Intent format (YAML, read with PyYAML's safe loader: comments, anchors and aliases, flow lists and
block scalars all work; files are bounded in size, nesting and alias expansion)::

    intents:
      LightOn:
        - "turn on the {room} light"
        - "[please] switch (on | up) the {room} light"
    slots:
      room: [kitchen, bedroom, "living room"]

Templates hold words, ``[optional]``, ``(a | b)`` alternatives and ``{slot}`` references; slot
values may be several words. Malformed input raises ValueError naming the line and column; a
grammar that compiles to more states or word arcs than :mod:`edge_speech.limits` allows
(``max_grammar_states``, ``max_grammar_arcs``) raises ``ResourceLimitError``.

Home Assistant sentence files (hassil's format: ``language:``, intents with ``data:`` blocks,
lists with ``in``/``out`` values and ranges) load with :func:`load_sentences` (a file or a
directory), and ``Grammar.from_yaml`` recognises their text; see ``edge_speech.ha_sentences``.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import math
import re
from typing import TYPE_CHECKING, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import yaml

from edge_speech import limits, yaml_reading

if TYPE_CHECKING:
    from edge_speech.grammar_tokens import TokenGraph

__all__ = ["Grammar", "WordArc", "load_sentences"]


@dataclasses.dataclass(frozen=True)
class WordArc:
    src: int
    dst: int
    word: str
    weight: float  # natural log, <= 0
    intent: str
    slot: Optional[str]


# -- expressions -----------------------------------------------------------------------------------


@dataclasses.dataclass
class _Word:
    text: str


@dataclasses.dataclass
class _Ref:
    name: str
    line: int
    col: int


@dataclasses.dataclass
class _Slot:
    name: str
    line: int
    col: int


@dataclasses.dataclass
class _Seq:
    items: list


@dataclasses.dataclass
class _Alt:
    items: list
    weights: Optional[list]


@dataclasses.dataclass
class _Opt:
    item: object


@dataclasses.dataclass
class _Rep:
    item: object
    at_least_one: bool


class _Tokens:
    """Splits grammar text into tokens with line/column positions."""

    _PATTERN = re.compile(
        r"""
        (?P<space>\s+) | (?P<comment>//[^\n]*|/\*.*?\*/) | (?P<weight>/[^/*\n][^/\n]*/) |
        (?P<ref><[^<>\s]+>) | (?P<slot>\{[^{}]*\}) | (?P<quoted>"[^"\n]*") |
        (?P<punct>[()\[\]|*+;=]) | (?P<word>[^\s()\[\]|*+;=<>{}"/]+)
    """,
        re.X | re.S,
    )

    def __init__(self, text: str, line0: int = 1, col0: int = 1, what: str = "grammar"):
        self.items: List[Tuple[str, str, int, int]] = []
        self.what = what
        pos, line, line_start = 0, line0, -(col0 - 1)
        while pos < len(text):
            m = self._PATTERN.match(text, pos)
            col = pos - line_start + 1
            if m is None:
                raise ValueError(f"{what}: line {line}, column {col}: unexpected character {text[pos]!r}")
            kind = m.lastgroup
            if kind is None:  # every alternative of the pattern is a named group
                raise ValueError(f"{what}: line {line}, column {col}: unexpected character {text[pos]!r}")
            if kind not in ("space", "comment"):
                self.items.append((kind, m.group(), line, col))
            newlines = m.group().count("\n")
            if newlines:
                line += newlines
                line_start = m.start() + m.group().rindex("\n") + 1
            pos = m.end()
        self.end = (line, pos - line_start + 1)
        self.i = 0
        self.depth = 0  # open groups: bounded so a hostile file cannot exhaust the parser's stack

    def peek(self) -> Optional[Tuple[str, str, int, int]]:
        return self.items[self.i] if self.i < len(self.items) else None

    def take(self) -> Tuple[str, str, int, int]:
        tok = self.peek()
        if tok is None:
            raise self.error(None, "unexpected end")
        self.i += 1
        return tok

    def expect(self, value: str) -> Tuple[str, str, int, int]:
        tok = self.peek()
        if tok is None or tok[1] != value:
            raise self.error(tok, f"expected {value!r}" + (f", found {tok[1]!r}" if tok else ""))
        self.i += 1
        return tok

    def error(self, tok, message: str) -> ValueError:
        line, col = (tok[2], tok[3]) if tok else self.end
        return ValueError(f"{self.what}: line {line}, column {col}: {message}")


# Deepest nesting of groups ((...), [...]) a grammar may have; rule references and groups together
# may go three times as deep. Real grammars use a handful; 500 nested groups raised RecursionError.
MAX_NESTING = 100
# Optional items ([x], x*) in a row from which they are built through hub states (see _Builder._optional_run)
_OPTIONAL_RUN_FOR_HUBS = 16
_TYPED_WORD_BREAK = re.compile(r"[^\w']+")  # what separates words in typed text


def _parse_alternatives(toks: _Tokens, slots: bool, stop: Sequence[str]):
    items, weights, starts = [], [], []
    while True:
        weight = None
        tok = toks.peek()
        starts.append(tok)
        if tok is not None and tok[0] == "weight":
            if slots:
                raise toks.error(tok, "weights are not supported in templates")
            toks.take()
            try:
                weight = float(tok[1].strip("/ \t"))
            except ValueError:
                raise toks.error(
                    tok, f"bad weight {tok[1]!r}: a weight is a number between slashes, like /2.5/"
                ) from None
            if not (math.isfinite(weight) and weight > 0):
                raise toks.error(tok, f"weights must be finite numbers > 0, got {tok[1]!r}")
        weights.append(weight)
        items.append(_parse_sequence(toks, slots, stop))
        tok = toks.peek()
        if tok is None or tok[1] != "|":
            break
        toks.take()
    if all(w is None for w in weights):
        return items[0] if len(items) == 1 else _Alt(items, None)
    if any(w is None for w in weights):
        raise toks.error(starts[weights.index(None)], "give weights to all alternatives or to none")
    return _Alt(items, weights)


def _parse_sequence(toks: _Tokens, slots: bool, stop: Sequence[str]):
    items = []
    while True:
        tok = toks.peek()
        if tok is None or tok[1] in (")", "]", ";", "|"):
            break  # the caller checks that it is the closer it expects
        kind, value, line, col = toks.take()
        if value in ("(", "["):
            toks.depth += 1
            if toks.depth > MAX_NESTING:
                raise toks.error((kind, value, line, col), f"groups nested more than {MAX_NESTING} deep")
            inner = _parse_alternatives(toks, slots, (")" if value == "(" else "]",))
            toks.expect(")" if value == "(" else "]")
            toks.depth -= 1
            item = inner if value == "(" else _Opt(inner)
        elif kind == "word":
            item = _Word(value)
        elif kind == "quoted":
            words = value[1:-1].split()
            if not words:
                raise toks.error((kind, value, line, col), "empty quoted token")
            item = _Seq([_Word(w) for w in words])
        elif kind == "ref" and not slots:
            item = _Ref(value[1:-1], line, col)
        elif kind == "slot" and slots:
            name = value[1:-1].strip()
            if not re.fullmatch(r"[A-Za-z_][\w-]*", name):
                raise toks.error((kind, value, line, col), f"bad slot name {value!r}")
            item = _Slot(name, line, col)
        elif kind == "slot":
            continue  # a JSGF tag: accepted and ignored
        else:
            raise toks.error((kind, value, line, col), f"unexpected {value!r}")
        while True:
            tok = toks.peek()
            if tok is not None and tok[1] in ("*", "+"):
                toks.take()
                item = _Rep(item, tok[1] == "+")
            elif tok is not None and tok[0] == "slot" and not slots:
                toks.take()  # tag
            else:
                break
        items.append(item)
    if not items:
        raise toks.error(toks.peek(), "empty expansion")
    return items[0] if len(items) == 1 else _Seq(items)


# -- automaton -------------------------------------------------------------------------------------


class _Builder:
    """Thompson-style construction with few epsilons, then epsilon removal (the decoder reads
    epsilon-free arcs). An expression may be built into a given end state, so alternatives and
    slot values share their end instead of each joining it by an epsilon: removing those epsilons
    copied every value's arcs onto every value's end, and ten references to a 300-value slot made
    810 k arcs. Long runs of optional items go through hub states (:meth:`_optional_run`). What
    can still grow quadratically (runs of items that end optionally, ``[a [b]]``) is counted against
    :mod:`edge_speech.limits` (``max_grammar_states``, ``max_grammar_arcs``) while it is built."""

    def __init__(self, rules: Mapping[str, object], slot_values: Mapping[str, list], what: str):
        self.rules, self.slot_values, self.what = rules, slot_values, what
        self.num_states = 1
        self.eps: List[Tuple[int, int, float]] = []
        self.arcs: List[WordArc] = []
        self.stack: List[str] = []
        self.depth = 0
        self.max_states = limits.current().max_grammar_states

    def new(self) -> int:
        self.num_states += 1
        if self.num_states > self.max_states:
            raise limits.exceeded(
                f"{self.what}: states of the grammar", f"{self.num_states} so far", "max_grammar_states"
            )
        return self.num_states - 1

    def build(self, e, s: int, intent: str, slot: Optional[str], ends: Optional[Tuple[int, ...]] = None) -> int:
        """Builds ``e`` from state ``s`` into ``ends`` when given (states that no construct leaves
        by a back edge; every path through ``e`` reaches each of them), else into a new state;
        returns the (first) end."""
        self.depth += 1
        try:
            if self.depth > 3 * MAX_NESTING:  # groups inside a chain of rule references
                chain = f" (rule chain <{self.stack[0]}> ... <{self.stack[-1]}>)" if self.stack else ""
                raise ValueError(f"{self.what}: rules and groups nested more than {3 * MAX_NESTING} deep{chain}")
            return self._build(e, s, intent, slot, ends or (self.new(),))
        finally:
            self.depth -= 1

    def _build(self, e, s: int, intent: str, slot: Optional[str], ends: Tuple[int, ...]) -> int:
        if isinstance(e, _Word):
            self.arcs.extend(WordArc(s, d, e.text, 0.0, intent, slot) for d in ends)
        elif isinstance(e, _Seq):
            items = e.items
            i = 0
            while i < len(items) - 1:
                run = 0  # optional items in a row from i
                while i + run < len(items) and _is_optional(items[i + run]):
                    run += 1
                if run >= _OPTIONAL_RUN_FOR_HUBS:
                    last = i + run == len(items)
                    s = self._optional_run(items[i : i + run], s, intent, slot, ends if last else None)
                    i += run
                    if last:
                        return ends[0]
                else:
                    s = self.build(items[i], s, intent, slot)
                    i += 1
            self.build(items[-1], s, intent, slot, ends)
        elif isinstance(e, _Alt):
            # no construct has a back edge into its start or out of its end (loops have their own
            # states), so the alternatives may all leave s and all reach the same ends
            log_weights = _normalised_log_weights(e.weights) if e.weights else None
            for i, item in enumerate(e.items):
                start = s
                if log_weights is not None:
                    start = self.new()
                    self.eps.append((s, start, log_weights[i]))
                self.build(item, start, intent, slot, ends)
        elif isinstance(e, _Opt):
            self.build(e.item, s, intent, slot, ends)
            self.eps.extend((s, d, 0.0) for d in ends)
        elif isinstance(e, _Rep):
            loop = self.new()
            self.eps.append((s, loop, 0.0))
            e_end = self.build(e.item, loop, intent, slot)
            self.eps.append((e_end, loop, 0.0))
            self.eps.extend((e_end, d, 0.0) for d in ends)
            if not e.at_least_one:
                self.eps.extend((s, d, 0.0) for d in ends)
        elif isinstance(e, _Ref):
            if e.name not in self.rules:
                raise ValueError(f"{self.what}: line {e.line}, column {e.col}: unknown rule <{e.name}>")
            if e.name in self.stack:
                raise ValueError(
                    f"{self.what}: line {e.line}, column {e.col}: rule <{e.name}> refers to itself "
                    "(recursive rules are not supported; use * or +)"
                )
            self.stack.append(e.name)
            self.build(self.rules[e.name], s, intent, slot, ends)
            self.stack.pop()
        elif isinstance(e, _Slot):
            if e.name not in self.slot_values:
                raise ValueError(f"{self.what}: line {e.line}, column {e.col}: unknown slot {{{e.name}}}")
            values = self.slot_values[e.name]
            alt = _Alt([_Seq([_Word(w) for w in v.split()]) for v in values], None)
            self.build(alt, s, intent, e.name, ends)
        else:
            raise TypeError(e)
        return ends[0]

    def _optional_run(
        self, items: Sequence[object], s: int, intent: str, slot: Optional[str], ends: Optional[Tuple[int, ...]]
    ) -> int:
        """``[x0] [x1] ... [xn-1]`` (items ``[x]`` or ``x*``) from ``s``: any subsequence of the
        items, starred ones repeated. Chained by epsilons, removing them gives every state the
        arcs of every later item (n^2/2 arcs for n words).
        Here positions -1 (``s``), 0..n-1 (the items) and n (the end) are halved recursively; each
        halving gets a hub state that the left half's items end in and that leads (by epsilons)
        to the right half's items and the end. Any item reaches any later one through the hub
        where they were split, and each item meets O(log n) hubs: O(n log n) arcs."""
        n = len(items)
        ends = ends or (self.new(),)
        starts = [self.new() for _ in items]
        item_ends: List[List[int]] = [[] for _ in items]
        halves = [(-1, n)]
        while halves:
            lo, hi = halves.pop()
            if lo >= hi:
                continue
            mid = (lo + hi + 1) // 2
            hub = self.new()
            for p in range(lo, mid):
                if p < 0:
                    self.eps.append((s, hub, 0.0))
                else:
                    item_ends[p].append(hub)
            for p in range(mid, hi + 1):
                if p < n:
                    self.eps.append((hub, starts[p], 0.0))
                else:
                    self.eps.extend((hub, d, 0.0) for d in ends)
            halves += [(lo, mid - 1), (mid, hi)]
        for item, start, hubs in zip(items, starts, item_ends):
            if isinstance(item, _Opt):
                self.build(item.item, start, intent, slot, tuple(hubs))
            elif isinstance(item, _Rep):  # x* here is x+: the run makes it optional
                self._one_or_more(item.item, start, intent, slot, tuple(hubs))
            else:
                raise TypeError(item)
        return ends[0]

    def _one_or_more(self, e, s: int, intent: str, slot: Optional[str], ends: Tuple[int, ...]) -> None:
        """``e+`` whose words land in ``ends`` themselves (an epsilon from a loop's end into hubs
        would give it every later item's arcs): ``e`` once into ``ends`` and a repeat state, and
        again from the repeat state into both."""
        again = self.new()
        self.build(e, s, intent, slot, ends + (again,))
        self.build(e, again, intent, slot, ends + (again,))

    def finish(self, finals: Sequence[int]) -> "Grammar":
        # epsilon removal: each state takes the word arcs of the states its epsilons reach (by
        # their best path), then keep what is reachable and co-reachable. A chain of n optional
        # words needs n^2/2 arcs without epsilons, so the arcs are counted as they are made.
        max_arcs = limits.current().max_grammar_arcs
        n = self.num_states
        eps_out: List[List[Tuple[int, float]]] = [[] for _ in range(n)]
        for src, dst, w in self.eps:
            eps_out[src].append((dst, w))
        arcs_out: List[List[WordArc]] = [[] for _ in range(n)]
        for arc in self.arcs:
            arcs_out[arc.src].append(arc)
        final_set = set(finals)
        new_finals = set()
        # arcs by source: (dst, word, intent, slot) -> best weight
        # only states that word arcs reach (from 0) are closed: the others would be trimmed
        closed: Dict[int, Dict[Tuple[int, str, str, Optional[str]], float]] = {}
        total = 0
        stack = [0]
        while stack:
            s = stack.pop()
            if s in closed:
                continue
            kept: Dict[Tuple[int, str, str, Optional[str]], float] = {}
            closed[s] = kept
            for u, w0 in _epsilon_closure(s, eps_out):
                if u in final_set:
                    new_finals.add(s)
                for arc in arcs_out[u]:
                    key = (arc.dst, arc.word, arc.intent, arc.slot)
                    previous = kept.get(key)
                    if previous is None:
                        total += 1
                        if total > max_arcs:
                            raise limits.exceeded(
                                f"{self.what}: word arcs of the grammar (repeated or optional items in a row multiply them)",
                                f"{total} so far",
                                "max_grammar_arcs",
                            )
                        kept[key] = w0 + arc.weight
                        if arc.dst not in closed:
                            stack.append(arc.dst)
                    elif w0 + arc.weight > previous:
                        kept[key] = w0 + arc.weight
        fwd = set(closed)
        # trim: keep what reaches a final state
        inc: Dict[int, List[int]] = {}
        for s in fwd:
            for dst, _, _, _ in closed[s]:
                inc.setdefault(dst, []).append(s)
        bwd, stack = set(new_finals), list(new_finals)
        while stack:
            for src in inc.get(stack.pop(), []):
                if src not in bwd:
                    bwd.add(src)
                    stack.append(src)
        keep = sorted((fwd & bwd) | {0})
        self.kept_states = keep  # new state i was state keep[i] (for callers that annotate states)
        index = {s: i for i, s in enumerate(keep)}
        arcs: List[WordArc] = []
        for s in keep:  # in order of the new ids: sorting each state's arcs sorts them all
            if s in fwd and s in bwd:
                state_arcs = [
                    WordArc(index[s], index[dst], word, w, intent, slot)
                    for (dst, word, intent, slot), w in closed[s].items()
                    if dst in index and dst in bwd
                ]
                arcs.extend(sorted(state_arcs, key=lambda a: (a.dst, a.word)))
            closed[s] = {}  # what is converted is freed: the dicts outweigh the arcs
        finals_out = sorted(index[s] for s in new_finals if s in index and s in fwd)
        if not finals_out:
            raise ValueError(f"{self.what}: the grammar accepts no sentence")
        return Grammar(len(keep), tuple(arcs), tuple(finals_out))


def _is_optional(e) -> bool:
    """``[x]`` or ``x*``: an item a run of optional items may skip."""
    return isinstance(e, _Opt) or (isinstance(e, _Rep) and not e.at_least_one)


def _epsilon_closure(s: int, eps_out: Sequence[Sequence[Tuple[int, float]]]) -> List[Tuple[int, float]]:
    """(state, best log weight) of every state ``s`` reaches by epsilons, ``s`` included; epsilon
    weights are <= 0, so the best paths come out in order as in Dijkstra's algorithm."""
    if not eps_out[s]:
        return [(s, 0.0)]
    best = {s: 0.0}
    done: List[Tuple[int, float]] = []
    heap = [(-0.0, s)]
    seen = set()
    while heap:
        cost, u = heapq.heappop(heap)
        if u in seen:
            continue
        seen.add(u)
        done.append((u, -cost))
        for v, w in eps_out[u]:
            if v not in seen and -cost + w > best.get(v, -math.inf):
                best[v] = -cost + w
                heapq.heappush(heap, (cost - w, v))
    return done


def _normalised_log_weights(weights: Sequence[float]) -> List[float]:
    """log(w / sum(w)) of positive finite weights, in the log domain: a sum of /1e308/ weights
    overflows and a ratio of tiny ones underflows (which made log() fail)."""
    logs = [math.log(w) for w in weights]
    top = max(logs)
    log_total = top + math.log(sum(math.exp(x - top) for x in logs))
    return [x - log_total for x in logs]


@dataclasses.dataclass(frozen=True)
class Grammar:
    """A word automaton: state 0 starts, ``finals`` end; arcs carry word, weight, intent, slot."""

    num_states: int
    arcs: Tuple[WordArc, ...]
    finals: Tuple[int, ...]

    @classmethod
    def from_jsgf(cls, text: str) -> "Grammar":
        """Compiles JSGF text (see the module docstring for the subset)."""
        if not isinstance(text, str):
            raise TypeError("JSGF grammar must be text")
        from edge_speech import ha_sentences

        if ha_sentences.looks_like_sentences(text):  # Home Assistant sentences: their <rules> and '=' look like JSGF
            return ha_sentences.from_text(text)
        toks = _Tokens(text, what="JSGF")
        # header lines: "#JSGF ...;" is not a token here, so strip it first by position
        rules: Dict[str, object] = {}
        public: List[str] = []
        tok = toks.peek()
        if tok is not None and tok[1].startswith("#JSGF"):
            while toks.take()[1] != ";":
                if toks.peek() is None:
                    raise toks.error(None, "the #JSGF header needs a ';'")
        tok = toks.peek()
        if tok is not None and tok[1] == "grammar":
            toks.take()
            name_tok = toks.take()
            if name_tok[0] != "word":
                raise toks.error(name_tok, "expected a grammar name")
            toks.expect(";")
        while toks.peek() is not None:
            tok = toks.take()
            is_public = tok[1] == "public"
            if tok[1] == "import":
                raise toks.error(tok, "import is not supported")
            if is_public:
                tok = toks.take()
            if tok[0] != "ref":
                raise toks.error(tok, f"expected a rule name like <command>, found {tok[1]!r}")
            name = tok[1][1:-1]
            if name in rules:
                raise toks.error(tok, f"rule <{name}> is defined twice")
            toks.expect("=")
            rules[name] = _parse_alternatives(toks, slots=False, stop=(";",))
            toks.expect(";")
            if is_public:
                public.append(name)
        if not public:
            raise ValueError("JSGF: the grammar has no public rule")
        builder = _Builder(rules, {}, "JSGF")
        finals = []
        for name in public:
            builder.stack = [name]
            finals.append(builder.build(rules[name], 0, name, None))
        return builder.finish(finals)

    @classmethod
    def from_intents(
        cls,
        intents: Mapping[str, Sequence[str]],
        slots: Optional[Mapping[str, Sequence[str]]] = None,
    ) -> "Grammar":
        """Compiles intent templates: ``{"LightOn": ["turn on the {room} light"]}`` with slot values."""
        slot_values: Dict[str, list] = {}
        for name, values in (slots or {}).items():
            if isinstance(values, str) or not all(isinstance(v, str) and v.split() for v in values):
                raise ValueError(f"slot {name!r} must list non-empty strings")
            if not values:
                raise ValueError(f"slot {name!r} has no values")
            slot_values[name] = [" ".join(v.split()) for v in values]
        if not intents:
            raise ValueError("no intents given")
        builder = _Builder({}, slot_values, "intents")
        finals = []
        for intent, templates in intents.items():
            if isinstance(templates, str) or not templates:
                raise ValueError(f"intent {intent!r} needs a list of templates")
            for t in templates:
                line, col, text = t if isinstance(t, tuple) else (None, 1, t)
                what = f"intent {intent!r}" if line is None else "intents"
                toks = _Tokens(text, line0=line or 1, col0=col, what=what)
                expr = _parse_alternatives(toks, slots=True, stop=())
                left = toks.peek()
                if left is not None:
                    raise toks.error(left, f"unexpected {left[1]!r}")
                builder.what = what
                finals.append(builder.build(expr, 0, intent, None))
        return builder.finish(finals)

    @classmethod
    def from_yaml(cls, text: str) -> "Grammar":
        """Compiles the YAML intent format (see the module docstring), or the text of a Home
        Assistant sentence file (recognised by its ``language:`` or ``data:``/``sentences:`` keys)."""
        from edge_speech import ha_sentences

        if ha_sentences.looks_like_sentences(text):
            return ha_sentences.from_text(text)
        intents, slots = _parse_intent_yaml(text)
        return cls.from_intents(intents, slots)

    def compile_tokens(self, vocab, token_bonus: float = 0.0) -> "TokenGraph":
        """This grammar spelled with a CTC vocabulary's tokens, for the grammar decoder (see
        :func:`edge_speech.grammar_tokens.compile_tokens`)."""
        from edge_speech.grammar_tokens import compile_tokens

        return compile_tokens(self, vocab, token_bonus)

    def interpret(self, path: Sequence[Tuple[str, str, Optional[str]]]) -> Optional[Tuple[str, Dict[str, object]]]:
        """(intent, slots) for a recognised path of (intent, word, slot) labels, or None to let the
        decoder join each slot's words (what plain intent grammars do; Home Assistant sentence
        grammars override this to give list ``out`` values and range numbers)."""
        return None

    def match(self, text: str, max_frontier: int = 10_000) -> Optional[Tuple[str, Dict[str, object]]]:
        """(intent, slots) of typed text, or None when the grammar does not accept it: the
        best-weighted accepted path, slot values joined as the decoder joins them; case and
        punctuation are ignored. ``max_frontier`` bounds the paths followed at once."""
        words = _TYPED_WORD_BREAK.sub(" ", text.lower()).split()
        if not words:
            return None
        # (state, intent, slots as sorted (slot, value) pairs) -> best weight so far
        frontier: Dict[tuple, float] = {(0, None, ()): 0.0}
        for word in words:
            following: Dict[tuple, float] = {}
            for (state, _intent, slots), weight in frontier.items():
                for arc in self._arcs_from.get(state, ()):
                    if arc.word != word:
                        continue
                    new_slots = slots
                    if arc.slot is not None:
                        filled = dict(slots)
                        filled[arc.slot] = f"{filled[arc.slot]} {word}" if arc.slot in filled else word
                        new_slots = tuple(sorted(filled.items()))
                    key = (arc.dst, arc.intent, new_slots)
                    if weight + arc.weight > following.get(key, -math.inf):
                        following[key] = weight + arc.weight
            if not following:
                return None
            if len(following) > max_frontier:
                following = dict(sorted(following.items(), key=lambda kv: -kv[1])[:max_frontier])
            frontier = following
        finals = set(self.finals)
        accepted = [(w, intent, slots) for (state, intent, slots), w in frontier.items() if state in finals]
        if not accepted:
            return None
        _, intent, slots = max(accepted, key=lambda t: (t[0], str(t[1]), t[2]))
        return intent, dict(slots)

    @functools.cached_property
    def _arcs_from(self) -> Dict[int, List[WordArc]]:
        out: Dict[int, List[WordArc]] = {}
        for arc in self.arcs:
            out.setdefault(arc.src, []).append(arc)
        return out

    # -- inspection ------------------------------------------------------------------------------
    def sentences(self, max_words: int = 12, limit: int = 100_000) -> Iterator[Tuple[str, str]]:
        """Every accepted (intent, sentence) with at most max_words words (for tests, small grammars)."""
        out_arcs: Dict[int, List[WordArc]] = {}
        for a in self.arcs:
            out_arcs.setdefault(a.src, []).append(a)
        finals = set(self.finals)
        seen = set()
        stack: List[Tuple[int, Tuple[str, ...], str]] = [(0, (), "")]  # intent: the last arc's (none yet)
        while stack:
            s, words, intent = stack.pop()
            if s in finals and words:
                key = (intent, " ".join(words))
                if key not in seen:
                    seen.add(key)
                    if len(seen) > limit:
                        raise ValueError("too many sentences")
                    yield key
            if len(words) < max_words:
                for a in out_arcs.get(s, []):
                    stack.append((a.dst, words + (a.word,), a.intent))


def load_sentences(path, wildcards: str = "error", lists: Optional[Mapping[str, object]] = None) -> "Grammar":
    """A Home Assistant sentence file, or a directory of them merged as Home Assistant merges
    custom sentences (needs hassil: ``pip install edge-speech[serve]``); ``lists`` fills lists such
    as ``{name}`` / ``{area}`` that Home Assistant takes from its entities. See ``edge_speech.ha_sentences``."""
    from edge_speech import ha_sentences

    return ha_sentences.load_sentences(path, wildcards=wildcards, lists=lists)


# -- the intent YAML -------------------------------------------------------------------------------

# Bounds on hostile intent files: real ones are a few kilobytes with a few hundred nodes.
MAX_INTENT_YAML_CHARS = 1 << 20
MAX_INTENT_YAML_NODES = 100_000

_YAML_TAG = yaml_reading.YAML_TAG
# scalars whose text, as written, is a template or a slot value (5, on and 2024-01-01 included)
_TEXT_TAGS = frozenset(_YAML_TAG + kind for kind in ("str", "int", "float", "bool", "timestamp"))


def _compose_intent_yaml(text: str):
    return yaml_reading.compose(
        text, "intents", MAX_INTENT_YAML_CHARS, MAX_INTENT_YAML_NODES, hint="a few levels are all an intent file needs"
    )


def _at(node) -> str:
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


def _kind(node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    kind = node.tag[len(_YAML_TAG) :] if node.tag.startswith(_YAML_TAG) else node.tag
    return {"str": "text", "int": "a number", "float": "a number", "bool": "true/false", "null": "nothing"}.get(
        kind, f"a {kind}"
    )


def _is_null(node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _YAML_TAG + "null"


def _text(node, what: str) -> str:
    """A scalar's text as written (``on`` stays "on", ``5`` stays "5"); other nodes are errors."""
    if not isinstance(node, yaml.ScalarNode) or _is_null(node):
        raise ValueError(f"intents: {_at(node)}: {what} must be text, found {_kind(node)}")
    if node.tag not in _TEXT_TAGS:
        raise ValueError(f"intents: {_at(node)}: {what} has the unsupported tag {node.tag!r}")
    return node.value


def _mapping(node, what: str) -> List[Tuple[str, object, object]]:
    """(key text, key node, value node) of a mapping; a repeated key is an error."""
    if not isinstance(node, yaml.MappingNode):
        raise ValueError(f"intents: {_at(node)}: {what} must be a mapping of names, found {_kind(node)}")
    seen = set()
    entries = []
    for key_node, value_node in node.value:
        key = _text(key_node, "a name")
        if key in seen:
            raise ValueError(f"intents: {_at(key_node)}: {key!r} is defined twice")
        seen.add(key)
        entries.append((key, key_node, value_node))
    return entries


def _template_position(node, lines: Sequence[str]) -> Tuple[int, int]:
    """Line and column where a template's text begins (inside quotes, below a block indicator)."""
    line, col = node.start_mark.line + 1, node.start_mark.column + 1
    if node.style in ('"', "'"):
        return line, col + 1
    if node.style in ("|", ">"):
        for number in range(line, len(lines)):  # the first non-blank line below the indicator
            if lines[number].strip():
                return number + 1, len(lines[number]) - len(lines[number].lstrip()) + 1
    return line, col


def _parse_intent_yaml(text: str) -> Tuple[Dict[str, list], Dict[str, list]]:
    """``{intent: [(line, column, template)]}`` and ``{slot: [values]}`` of an intent file."""
    if not isinstance(text, str):
        raise TypeError("the intent YAML must be text")
    root = _compose_intent_yaml(text)
    lines = text.splitlines()
    intents: Dict[str, list] = {}
    slots: Dict[str, list] = {}
    if root is None or _is_null(root):
        raise ValueError("intents: no 'intents:' section with at least one intent")
    if not isinstance(root, yaml.MappingNode):
        raise ValueError(f"intents: {_at(root)}: expected 'intents:' or 'slots:' at the top, found {_kind(root)}")
    sections = {}
    for name, key_node, value in _mapping(root, "the document"):
        if name not in ("intents", "slots"):
            raise ValueError(f"intents: {_at(key_node)}: expected 'intents:' or 'slots:', found {name!r}")
        sections[name] = value
    if "intents" not in sections or _is_null(sections["intents"]):
        raise ValueError("intents: no 'intents:' section with at least one intent")
    for name, _, value in _mapping(sections["intents"], "'intents'"):
        if _is_null(value):
            raise ValueError(f"intents: intent {name!r} has no templates")
        if isinstance(value, yaml.ScalarNode):
            raise ValueError(
                f"intents: {_at(value)}: list the templates of {name!r} below it, one '- template' per line"
            )
        if not isinstance(value, yaml.SequenceNode):
            raise ValueError(f"intents: {_at(value)}: the templates of {name!r} must be a list, found {_kind(value)}")
        templates = []
        for item in value.value:
            template = _text(item, f"a template of {name!r}")
            if not template.strip():
                raise ValueError(f"intents: {_at(item)}: empty template in {name!r}")
            templates.append((*_template_position(item, lines), template.rstrip()))
        if not templates:
            raise ValueError(f"intents: intent {name!r} has no templates")
        intents[name] = templates
    if "slots" in sections and not _is_null(sections["slots"]):
        for name, _, value in _mapping(sections["slots"], "'slots'"):
            if _is_null(value):
                slots[name] = []
            elif isinstance(value, yaml.SequenceNode):
                slots[name] = [_text(item, f"a value of slot {name!r}") for item in value.value]
            else:
                raise ValueError(f"intents: {_at(value)}: slot {name!r} must list its values, found {_kind(value)}")
    return intents, slots
