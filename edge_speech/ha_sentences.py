"""Home Assistant sentence templates (hassil's YAML format) compiled into a command Grammar.

Home Assistant's custom sentences (``config/custom_sentences/<language>/*.yaml``) describe intents
with templates that real sets combine into billions of sentences. They are compiled here straight
into the word automaton of :class:`edge_speech.grammars.Grammar` without expanding any sentence:
hassil (Home Assistant's own template package, ``pip install edge-speech[serve]``) parses each
template into its expression tree, and the tree becomes automaton pieces, so the size grows with
the templates and lists, not with the sentences they spell::

    language: en
    intents:
      HassTurnOn:
        data:
          - sentences:
              - "(turn | switch) on [the] {area} light[s]"
            slots: {domain: light}
    lists:
      area:
        values:
          - kitchen
          - in: "living room"
            out: living_room
      brightness: {range: {from: 0, to: 100, step: 10}}
    expansion_rules:
      the: "[the]"
    skip_words: [please]

    from edge_speech.grammars import load_sentences
    grammar = load_sentences("custom_sentences/en")   # a file, or a directory merged as HA does
    dec = CTCDecoder(tokens, grammar=grammar)          # res.slots == {"area": "living_room", "domain": "light"}
    grammar.match("turn on the living room lights")    # the same for text: ("HassTurnOn", {...})

What is supported: alternatives ``( | )``, optionals ``[ ]``, permutations ``( ; )``, list
references ``{list}`` / ``{list:slot}`` (text lists with ``in``/``out`` values, values that are
templates themselves, ``range`` lists spoken as number words of the file's language, inline
``{1..10:slot}``), expansion rules ``<rule>`` (global and per data block), per-block ``lists``,
fixed ``slots`` of a data block, ``skip_words`` (spoken before or after a command; hassil also
drops them mid-sentence, which this automaton does not). Slot values come out as Home Assistant
expects: a list value's ``out`` (its spoken text when it has none), a range's number (times its
``multiplier``). ``requires_context`` / ``excludes_context`` need the live state of a home and are
ignored: the sentences match whatever the context. Wildcard lists (``wildcard: true``) match free
text, which a closed grammar cannot: a template that uses one raises ValueError naming the list
(``wildcards="skip"`` drops such templates instead). Unknown lists and rules raise ValueError
naming them, as do templates nested deeper than ``MAX_DEPTH`` and sets over the size limits.

Words are case-folded, ``-`` and ``_`` split words, and hassil's punctuation and symbols (``%``,
``°``) are dropped; words with digits (``1/2``, ``4000k``) are not spoken forms and the
sentences that need them are left out (ranges are spoken as number words).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import unicodedata
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from edge_speech import limits, yaml_reading
from edge_speech.grammars import Grammar, WordArc, _Builder

__all__ = [
    "SentencesGrammar",
    "load_sentences",
    "from_text",
    "from_dict",
    "looks_like_sentences",
    "MAX_DEPTH",
    "MAX_PIECE_STATES",
    "MAX_WORD_PATHS",
    "MAX_RANGE_VALUES",
    "MAX_PERMUTATION_ITEMS",
    "MAX_VALUE_WORDS",
]

# -- limits (untrusted input) ------------------------------------------------------------------
MAX_DEPTH = 64  # nesting of groups, list values and rule references
MAX_PIECE_STATES = 1_000_000  # states of the intermediate piece network
MAX_WORD_PATHS = 100_000  # spellings of one word position (glued alternatives multiply)
MAX_RANGE_VALUES = 10_000  # numbers in one range list
MAX_PERMUTATION_ITEMS = 8  # (a; b; ...) compiles to 2^n subsets
MAX_VALUE_WORDS = 64  # words in one list value
MAX_SENTENCE_FILE_CHARS = 16 << 20  # one YAML file (Home Assistant's largest English file is ~100 kB)
MAX_SENTENCE_FILE_NODES = 2_000_000  # its nodes with every alias counted again (billion laughs)

# A slot as the compiler tracks it: (slot name, key of the list that fills it).
_SlotKey = Tuple[str, str]

_INSTALL = (
    "Home Assistant sentence files need the hassil package: pip install edge-speech[serve] (or pip install hassil)"
)
_PUNCTUATION = '.。,，?¿？؟!¡！;；:：’…"“”«»'


def _hassil():
    try:
        import hassil  # noqa: F401
        import hassil.expression
        import hassil.intents
        import hassil.parse_expression
        import hassil.util
    except ImportError:
        raise ImportError(_INSTALL) from None
    return hassil


# -- the grammar ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SentencesGrammar(Grammar):
    """A :class:`Grammar` compiled from Home Assistant sentences. Besides the automaton it holds
    (``table``, JSON) each slot's spoken forms with their ``out`` values and, per state where a
    sentence can end, its data block (for the block's fixed ``slots``). :meth:`interpret` turns a
    decoded path into Home Assistant's intent and slots, :meth:`match` does the same for text."""

    language: str = ""
    table: str = "{}"
    _cache: dict = dataclasses.field(default_factory=dict, compare=False, hash=False, repr=False)

    def __hash__(self) -> int:  # computed once: grammars key decoder caches, and the arcs are many
        cached = self._cache.get("hash")
        if cached is None:
            cached = self._cache["hash"] = hash((self.num_states, self.arcs, self.finals, self.language, self.table))
        return cached

    def __getstate__(self):  # the cache (a hash is per process) is rebuilt after unpickling
        return {**self.__dict__, "_cache": {}}

    def _tables(self) -> Dict[str, Any]:
        cache = self._cache
        if "next" not in cache:
            data = json.loads(self.table)
            cache["blocks"] = data["blocks"]
            cache["final_block"] = {int(k): v for k, v in data["final_block"].items()}
            cache["values"] = data["values"]
            cache["names"] = data["names"]
            nxt: Dict[Tuple[int, str], List[WordArc]] = {}
            for arc in self.arcs:
                nxt.setdefault((arc.src, arc.word), []).append(arc)
            cache["finals"] = frozenset(self.finals)
            cache["next"] = nxt
        return cache

    def interpret(self, path: Sequence[Tuple[str, str, Optional[str]]]) -> Optional[Tuple[str, Dict[str, Any]]]:
        """(intent, slots) of a recognised path of (intent, word, slot) labels, with list values
        as their ``out`` and ranges as numbers; None when the path is not in the grammar."""
        return self._walk([w for _, w, _ in path], [(i, s) for i, _, s in path])

    def match(self, text: str, max_frontier: int = 10_000) -> Optional[Tuple[str, Dict[str, Any]]]:
        """(intent, slots) of a written sentence (normalised like the templates), None if outside.
        ``max_frontier`` is Grammar.match's bound; this walk keeps one path per state and needs none."""
        words = _normalize(text).split()
        return self._walk(words, None) if words else None

    def _walk(
        self,
        words: Sequence[str],
        labels: Optional[Sequence[Tuple[str, Optional[str]]]],
    ) -> Optional[Tuple[str, Dict[str, Any]]]:
        """Follows the words through the automaton (all paths at once, the lowest states first);
        ``labels``: each word's (intent, slot) the path must carry, None for any."""
        t = self._tables()
        nxt, finals = t["next"], t["finals"]
        # each reached state -> (the state before it, the arc taken); the start has neither
        frontier: Mapping[int, Optional[Tuple[int, WordArc]]] = {0: None}
        history: List[Dict[int, Tuple[int, WordArc]]] = []
        for k, word in enumerate(words):
            following: Dict[int, Tuple[int, WordArc]] = {}
            for state in sorted(frontier):
                for arc in nxt.get((state, word), ()):
                    if labels is not None and (arc.intent, arc.slot) != labels[k]:
                        continue
                    if arc.dst not in following:
                        following[arc.dst] = (state, arc)
            if not following:
                return None
            history.append(following)
            frontier = following
        ends = sorted(s for s in frontier if s in finals)
        if not ends:
            return None
        state, arcs = ends[0], []
        for following in reversed(history):
            prev, arc = following[state]
            arcs.append(arc)
            state = prev
        arcs.reverse()
        return self._slots(arcs, ends[0], t)

    def _slots(self, arcs: Sequence[WordArc], final: int, t) -> Tuple[str, Dict[str, Any]]:
        spoken: Dict[str, List[str]] = {}
        for arc in arcs:
            if arc.slot is not None:
                spoken.setdefault(arc.slot, []).append(arc.word)
        slots: Dict[str, Any] = {}
        for label, words in spoken.items():
            text = " ".join(words)
            table = t["values"].get(label, {})
            slots[t["names"].get(label, label)] = table[text][0] if text in table else text  # no out: the text
        block = t["final_block"].get(final)
        if block is not None:
            for slot, value in t["blocks"][block][1].items():
                slots.setdefault(slot, value)
        return arcs[-1].intent, slots


# -- loading -----------------------------------------------------------------------------------


def looks_like_sentences(text: str) -> bool:
    """True for text in Home Assistant's sentence format (a top-level ``language:``, or intents
    with ``data:`` / ``sentences:`` blocks) rather than edge_speech's intent YAML."""
    if not isinstance(text, str):
        return False
    return bool(
        re.search(r"^language\s*:", text, re.M)
        or (
            re.search(r"^intents\s*:", text, re.M)
            and re.search(r"^\s+data\s*:", text, re.M)
            and re.search(r"^\s+(-\s+)?sentences\s*:", text, re.M)
        )
    )


def load_sentences(
    path: "str | Path", wildcards: str = "error", lists: Optional[Mapping[str, Any]] = None
) -> SentencesGrammar:
    """A sentence file, or a directory whose ``*.yaml`` / ``*.yml`` files (sorted by name) are
    merged the way Home Assistant merges custom sentences (mappings merged, lists extended).

    ``lists`` adds or replaces lists, the way Home Assistant fills ``{name}`` and ``{area}`` from
    its entities: ``{"name": ["kitchen light", {"in": "tv", "out": "media_player.tv"}]}``, or a
    full list definition (``{"range": {...}}``). ``wildcards="skip"`` leaves out the templates
    that use a wildcard list instead of refusing them."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".yaml", ".yml") and p.is_file())
        if not files:
            raise ValueError(f"{path}: no .yaml sentence files in the directory")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"{path}: no such sentence file or directory")
    merged: Dict[str, Any] = {}
    for file in files:
        data = _load_yaml(file.read_text(encoding="utf-8"), str(file))
        _merge(merged, data, str(file))
    what = str(path)
    return from_dict(merged, what=what, wildcards=wildcards, lists=lists)


def from_text(
    text: str, what: str = "sentences", wildcards: str = "error", lists: Optional[Mapping[str, Any]] = None
) -> SentencesGrammar:
    """Compiles the text of one sentence file."""
    return from_dict(_load_yaml(text, what), what=what, wildcards=wildcards, lists=lists)


def _load_yaml(text: str, what: str) -> Dict[str, Any]:
    data = yaml_reading.load(text, what, MAX_SENTENCE_FILE_CHARS, MAX_SENTENCE_FILE_NODES)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{what}: a sentence file is a mapping with 'language' and 'intents'")
    return data


def _merge(base: Dict[str, Any], new: Mapping[str, Any], what: str) -> None:
    for key, value in new.items():
        if key in base and isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise ValueError(f"{what}: {key!r} must be a mapping to merge with the other files")
            _merge(base[key], value, what)
        elif key in base and isinstance(base[key], list):
            if not isinstance(value, list):
                raise ValueError(f"{what}: {key!r} must be a list to merge with the other files")
            base[key].extend(value)
        else:
            base[key] = value


def _check_layout(data: Mapping[str, Any], what: str) -> None:
    if "language" not in data or not isinstance(data["language"], str):
        raise ValueError(f"{what}: missing 'language: <code>' (e.g. language: en)")
    intents = data.get("intents")
    if not isinstance(intents, Mapping) or not intents:
        raise ValueError(f"{what}: no 'intents:' mapping with at least one intent")
    for name, body in intents.items():
        if not isinstance(body, Mapping) or not isinstance(body.get("data"), list):
            raise ValueError(f"{what}: intent {name!r} needs 'data:', a list of blocks with 'sentences:'")
        for k, block in enumerate(body["data"]):
            if (
                not isinstance(block, Mapping)
                or not isinstance(block.get("sentences"), list)
                or not all(isinstance(s, str) for s in block["sentences"])
            ):
                raise ValueError(f"{what}: intent {name!r}, data block {k}: 'sentences' must be a list of strings")
            for key in ("slots", "lists", "expansion_rules"):
                if key in block and not isinstance(block[key], Mapping):
                    raise ValueError(f"{what}: intent {name!r}, data block {k}: {key!r} must be a mapping")
            _check_lists(block.get("lists") or {}, f"{what}: intent {name!r}, data block {k}")
    for key in ("lists", "expansion_rules"):
        if key in data and not isinstance(data[key], Mapping):
            raise ValueError(f"{what}: {key!r} must be a mapping")
    _check_lists(data.get("lists") or {}, what)
    skip = data.get("skip_words", [])
    if not isinstance(skip, list) or not all(isinstance(w, str) for w in skip):
        raise ValueError(f"{what}: 'skip_words' must be a list of strings")


def _check_lists(lists: Mapping[str, Any], what: str) -> None:
    for name, body in lists.items():
        if not isinstance(body, Mapping) or not ({"values", "range", "wildcard"} & set(body)):
            raise ValueError(f"{what}: list {{{name}}} needs 'values', 'range' or 'wildcard'")
        if "values" in body and not isinstance(body["values"], list):
            raise ValueError(f"{what}: list {{{name}}}: 'values' must be a list")
        for value in body.get("values") or ():
            if not isinstance(value, str) and not (isinstance(value, Mapping) and isinstance(value.get("in"), str)):
                raise ValueError(f"{what}: list {{{name}}}: a value is a string or has 'in: <text>', got {value!r}")
        if "range" in body:
            r = body["range"]
            if not isinstance(r, Mapping) or "from" not in r or "to" not in r:
                raise ValueError(f"{what}: list {{{name}}}: 'range' needs 'from' and 'to'")


def from_dict(
    data: Mapping[str, Any],
    what: str = "sentences",
    wildcards: str = "error",
    lists: Optional[Mapping[str, Any]] = None,
) -> SentencesGrammar:
    """Compiles a parsed sentence file (``{"language": ..., "intents": ..., "lists": ...}``);
    ``lists`` and ``wildcards`` as in :func:`load_sentences`. The mapping is not modified."""
    if wildcards not in ("error", "skip"):
        raise ValueError(f"wildcards must be 'error' or 'skip', got {wildcards!r}")
    if not isinstance(data, Mapping):
        raise TypeError("sentences must be a mapping")
    if lists:
        if not isinstance(lists, Mapping):
            raise TypeError("lists must map list names to values or list definitions")
        extra = {}
        for name, body in lists.items():
            if isinstance(body, Mapping):
                extra[name] = dict(body)
            elif isinstance(body, (str, bytes)) or not isinstance(body, Sequence):
                raise TypeError(f"list {{{name}}}: give a sequence of values or a list definition")
            else:
                extra[name] = {"values": list(body)}
        data = {**data, "lists": {**(data.get("lists") or {}), **extra}}
    _check_layout(data, what)
    hassil = _hassil()
    try:
        intents = hassil.intents.Intents.from_dict(data)
        for intent in intents.intents.values():
            for block in intent.data:
                block.sentences  # noqa: B018 -- parse every template now, to report errors here
    except RecursionError:
        raise ValueError(
            f"{what}: a template is nested too deeply for hassil's parser (this compiler takes {MAX_DEPTH} levels)"
        ) from None
    except (ValueError, KeyError, TypeError, AssertionError, hassil.parse_expression.ParseError) as err:
        raise ValueError(f"{what}: {type(err).__name__}: {err}") from None
    return _Compiler(intents, what, wildcards).compile()


# -- compilation ---------------------------------------------------------------------------------

_SPLIT = re.compile(r"(\s+)")
_BREAK = str.maketrans({"-": " ", "_": " ", **{c: None for c in _PUNCTUATION}})


def _normalize(text: str) -> str:
    """Case-folded text with '-' and '_' as spaces, punctuation and symbols (%, °, $) dropped: the
    form of the automaton's words. Symbols are written, not spoken; templates spell them out too
    (``{brightness}[%| percent]``)."""
    text = unicodedata.normalize("NFC", text).casefold().translate(_BREAK)
    if not text.isascii() or "%" in text or any(c in _ASCII_SYMBOLS for c in text):
        text = "".join(c for c in text if c != "%" and c != "‰" and not unicodedata.category(c).startswith("S"))
    return text


_ASCII_SYMBOLS = frozenset("$+<=>^`|~")
_DIGIT = re.compile(r"\d")


class _Net:
    """The piece network: arcs carry pieces of words (glued without spaces by templates such as
    ``light[s]``), explicit space arcs separate words, epsilon arcs join the structure."""

    def __init__(self, what: str):
        self.what = what
        self.n = 1
        self.out: Dict[int, list] = {}  # state -> [(dst, kind, text, slot, block)]

    def new(self) -> int:
        self.n += 1
        if self.n > MAX_PIECE_STATES:
            raise ValueError(f"{self.what}: the sentences need more than {MAX_PIECE_STATES} automaton states")
        return self.n - 1

    def link(self, a: int, b: int) -> None:
        self.out.setdefault(a, []).append((b, "eps", "", None, None))

    def text(self, s: int, text: str, slot, block) -> int:
        for part in _SPLIT.split(_normalize(text)):
            if not part:
                continue
            d = self.new()
            if part.isspace():
                self.out.setdefault(s, []).append((d, "space", "", None, None))
            else:
                self.out.setdefault(s, []).append((d, "piece", part, slot, block))
            s = d
        return s


class _Wildcard(ValueError):
    pass


class _Compiler:
    def __init__(self, intents, what: str, wildcards: str):
        self.h = _hassil()
        self.intents, self.what, self.wildcards = intents, what, wildcards
        self.language = intents.language
        self.net = _Net(what)
        self.blocks: List[Tuple[str, Dict[str, Any]]] = []
        self.values: Dict[_SlotKey, Dict[str, list]] = {}  # slot -> spoken text -> [out]
        self._registered: Set[_SlotKey] = set()
        self._list_keys: Dict[int, str] = {}  # id(list) -> a name unique in this set
        self._slot_keys: Dict[str, set] = {}  # slot -> keys of the lists that fill it
        self._numbers: Dict[Tuple, List[Tuple[str, Any]]] = {}
        self._tail: Dict[int, Tuple[int, str]] = {}  # block tail state -> (block, intent)

    # expressions -> pieces
    def build(self, e, s: int, ctx, depth: int) -> int:
        ex = self.h.expression
        if depth > MAX_DEPTH:
            raise ValueError(f"{ctx['where']}: nested deeper than {MAX_DEPTH} levels (groups, lists and rules)")
        net = self.net
        if isinstance(e, ex.TextChunk):
            return net.text(s, e.text, ctx["slot"], ctx["block"])
        if isinstance(e, ex.Alternative):
            end = net.new()
            for item in e.items:
                start = net.new()
                net.link(s, start)
                net.link(self.build(item, start, ctx, depth + 1), end)
            if not e.items:
                net.link(s, end)
            return end
        if isinstance(e, ex.Permutation):
            items = e.items
            if len(items) > MAX_PERMUTATION_ITEMS:
                raise ValueError(
                    f"{ctx['where']}: a permutation (a; b; ...) of {len(items)} items; "
                    f"at most {MAX_PERMUTATION_ITEMS} are supported"
                )
            full = (1 << len(items)) - 1
            at = {0: s}
            for mask in range(full + 1):  # subsets in increasing order: every item once, any order
                if mask not in at:
                    continue
                for i, item in enumerate(items):
                    if mask & (1 << i):
                        continue
                    target = mask | (1 << i)
                    if target not in at:
                        at[target] = net.new()
                    net.link(self.build(item, at[mask], ctx, depth + 1), at[target])
            return at[full]
        if isinstance(e, ex.Group):  # Sequence
            for item in e.items:
                s = self.build(item, s, ctx, depth + 1)
            return s
        if isinstance(e, ex.ListReference):
            return self.list_ref(e, s, ctx, depth)
        if isinstance(e, ex.RuleReference):
            name, inner = self.rule(e, ctx)
            return self.build(name.expression, s, inner, depth + 1)
        raise ValueError(f"{ctx['where']}: unsupported template element {type(e).__name__}")

    def rule(self, ref, ctx):
        name = ref.rule_name
        rule = ctx["rules"].get(name)
        if rule is None:
            raise ValueError(f"{ctx['where']}: unknown expansion rule <{name}>")
        if name in ctx["stack"]:
            raise ValueError(
                f"{ctx['where']}: expansion rule <{name}> refers to itself "
                f"({' -> '.join('<' + r + '>' for r in ctx['stack'] + [name])})"
            )
        return rule, dict(ctx, stack=ctx["stack"] + [name])

    def slot_list(self, ref, ctx):
        """(list key, values) of a list reference: values [(expression or None, words or None, out)]."""
        intents_mod = self.h.intents
        name = ref.list_name
        if ref.is_inline_range:
            start, stop, step = ref.get_inline_range()
            lst = intents_mod.RangeSlotList(name=None, start=start, stop=stop, step=step)
            key = name
        else:
            lst = ctx["lists"].get(name)
            if lst is None:
                raise ValueError(f"{ctx['where']}: unknown list {{{name}}}")
            key = self._list_keys.get(id(lst))  # lists live as long as the parsed set
            if key is None:
                taken = set(self._list_keys.values())
                key = (
                    name
                    if name not in taken
                    else next(f"{name}#{k}" for k in range(2, 10**6) if f"{name}#{k}" not in taken)
                )
                self._list_keys[id(lst)] = key
        if isinstance(lst, intents_mod.WildcardSlotList):
            raise _Wildcard(
                f"{ctx['where']}: list {{{name}}} is a wildcard (free text), which a speech "
                "grammar cannot recognise; give it values or a range, or drop the template"
            )
        if isinstance(lst, intents_mod.RangeSlotList):
            values = [(None, words, number) for words, number in self.numbers(lst, name, ctx)]
        elif isinstance(lst, intents_mod.TextSlotList):
            values = [(v.text_in, None, v.value_out) for v in lst.values]
        else:
            raise ValueError(f"{ctx['where']}: list {{{name}}} has an unsupported type {type(lst).__name__}")
        if not values:
            raise ValueError(f"{ctx['where']}: list {{{name}}} has no values")
        return key, values

    def list_ref(self, ref, s: int, ctx, depth: int) -> int:
        """A list's values: plain ones (words, numbers) as a word trie that shares their prefixes
        (101 numbers start with 28 words), templates as branches of their own. The automaton
        only spells the words; each slot's spoken forms map to their ``out`` values in a table."""
        net = self.net
        block = ctx["block"]
        list_key, values = self.slot_list(ref, ctx)
        slot = (ref.slot_name, list_key)  # which list filled the slot: two lists may fill one slot
        self._slot_keys.setdefault(ref.slot_name, set()).add(list_key)
        inner = dict(ctx, slot=slot)
        register = slot not in self._registered
        if register:
            self._registered.add(slot)
            table = self.values.setdefault(slot, {})
        end = net.new()
        plain: List[str] = []
        for expr, words, out in values:
            if expr is not None and not isinstance(expr, self.h.expression.TextChunk):
                start = net.new()
                net.link(s, start)
                net.link(self.build(expr, start, inner, depth + 1), end)
                if register and out is not None:  # no out: HA gives the matched (spoken) text
                    for spelling in self.spellings(expr, inner, depth + 1):
                        table.setdefault(" ".join(spelling.split()), [out])
                continue
            spoken = " ".join(_normalize(words if expr is None else expr.text).split())
            if spoken.count(" ") >= MAX_VALUE_WORDS:
                raise ValueError(
                    f"{ctx['where']}: a value of list {{{ref.list_name}}} has more than {MAX_VALUE_WORDS} words"
                )
            if spoken:
                plain.append(spoken)
                if register and out is not None:
                    table.setdefault(spoken, [out])
        if plain:
            self.word_set(plain, s, end, slot, block)
        return end

    def word_set(self, phrases: List[str], s: int, end: int, slot, block) -> None:
        """A set of word sequences as their minimal acyclic automaton (shared prefixes and
        suffixes: 0..100 in English takes about 30 word arcs), from state s to state end."""
        net = self.net
        root: dict = {}
        for phrase in phrases:
            node = root
            for word in phrase.split():
                node = node.setdefault(word, {})
            node[None] = True  # a phrase ends here
        ids: Dict[tuple, int] = {}
        canon: List[Tuple[bool, Tuple[Tuple[str, int], ...]]] = []

        def signature(node) -> int:
            key = (None in node, tuple(sorted((w, signature(c)) for w, c in node.items() if w is not None)))
            if key not in ids:
                ids[key] = len(canon)
                canon.append(key)
            return ids[key]

        top = signature(root)
        state: Dict[int, int] = {}
        for i, (terminal, children) in enumerate(canon):  # children come before their parents
            here = s if i == top else net.new()
            state[i] = here
            if terminal:
                net.link(here, end)
            if children:
                spaced = here if i == top else net.new()
                if i != top:
                    net.out.setdefault(here, []).append((spaced, "space", "", None, None))
                for word, child in children:
                    net.out.setdefault(spaced, []).append((state[child], "piece", word, slot, block))

    def spellings(self, e, ctx, depth: int, limit: int = 10_000) -> List[str]:
        """Every spoken form of a (small) list value template, normalised like the automaton's words."""
        ex = self.h.expression
        if depth > MAX_DEPTH:
            raise ValueError(f"{ctx['where']}: nested deeper than {MAX_DEPTH} levels (groups, lists and rules)")

        def join(parts_list):
            out = [""]
            for parts in parts_list:
                out = [a + b for a in out for b in parts]
                if len(out) > limit:
                    raise ValueError(f"{ctx['where']}: a list value has more than {limit} spoken forms")
            return out

        if isinstance(e, ex.TextChunk):
            forms = [_normalize(e.text)]
        elif isinstance(e, ex.Alternative):
            forms = [f for item in e.items for f in self.spellings(item, ctx, depth + 1, limit)]
        elif isinstance(e, ex.Permutation):
            forms = []
            for order in itertools.permutations(e.items):
                forms += join([self.spellings(i, ctx, depth + 1, limit) for i in order])
        elif isinstance(e, ex.Group):
            forms = join([self.spellings(i, ctx, depth + 1, limit) for i in e.items])
        elif isinstance(e, ex.ListReference):
            _, values = self.slot_list(e, ctx)
            forms = []
            for expr, words, _ in values:
                forms += self.spellings(expr, ctx, depth + 1, limit) if expr is not None else [words]
        elif isinstance(e, ex.RuleReference):
            rule, inner = self.rule(e, ctx)
            forms = self.spellings(rule.expression, inner, depth + 1, limit)
        else:
            forms = []
        if len(forms) > limit:
            raise ValueError(f"{ctx['where']}: a list value has more than {limit} spoken forms")
        return forms

    def numbers(self, lst, name: str, ctx) -> List[Tuple[str, Any]]:
        key = (lst.start, lst.stop, lst.step, lst.fraction_type, lst.multiplier, lst.words_language)
        if key in self._numbers:
            return self._numbers[key]
        count = len(range(lst.start, lst.stop + 1, lst.step)) * (
            1 + len(self.h.intents.RangeFractionType.get_fractions(lst.fraction_type))
        )
        if count > MAX_RANGE_VALUES:
            raise ValueError(
                f"{ctx['where']}: range list {{{name}}} has {count} numbers; at most "
                f"{MAX_RANGE_VALUES} can be spoken in a grammar"
            )
        if not lst.words:
            raise ValueError(
                f"{ctx['where']}: range list {{{name}}} has words: false; a speech grammar needs number words"
            )
        language = lst.words_language or self.language
        from hassil.numbers import get_rbnf_engine

        try:
            engine = get_rbnf_engine(language)
        except ValueError:
            raise ValueError(
                f"{ctx['where']}: no number words for language {language!r} (range list {{{name}}})"
            ) from None
        out = []
        for number in lst.get_numbers():
            value = number * lst.multiplier if lst.multiplier is not None else number
            seen = set()
            for words in engine.format_number(number).text_by_ruleset.values():
                words = " ".join(_normalize(words).split())
                if words and words not in seen:
                    seen.add(words)
                    out.append((words, value))
        self._numbers[key] = out
        return out

    # the whole set
    def compile(self) -> SentencesGrammar:
        net = self.net
        skip = sorted({" ".join(_normalize(w).split()) for w in self.intents.skip_words} - {""})
        begin = net.new()  # every sentence starts here
        net.link(0, begin)
        if skip:  # skip words before a command: 0 -skip-> loop -> begin
            loop = net.new()
            for phrase in skip:
                for a in (0, loop):
                    net.link(net.text(a, phrase + " ", None, None), loop)
            net.link(loop, begin)
        finals = []
        for intent_name, intent in self.intents.intents.items():
            for block in intent.data:
                block_id = len(self.blocks)
                self.blocks.append((intent_name, dict(block.slots or {})))
                lists = {**self.intents.slot_lists, **block.slot_lists}
                rules = {**self.intents.expansion_rules, **block.expansion_rules}
                tail = net.new()  # every sentence of the block ends here
                used = False
                for sentence in block.sentences:
                    where = f"{self.what}: intent {intent_name!r}, template {sentence.text!r}"
                    ctx: Dict[str, Any] = {
                        "where": where,
                        "slot": None,
                        "block": block_id,
                        "lists": lists,
                        "rules": rules,
                        "stack": [],
                    }
                    start = net.new()
                    try:
                        end = self.build(sentence.expression, start, ctx, 0)
                    except _Wildcard as err:
                        if self.wildcards == "error":
                            raise ValueError(str(err)) from None
                        continue  # what was built stays unreachable and is trimmed
                    except RecursionError:
                        raise ValueError(f"{where}: nested too deeply (limit {MAX_DEPTH} levels)") from None
                    net.link(begin, start)
                    net.link(end, tail)
                    used = True
                if used:
                    finals.append(tail)
                    self._tail[tail] = (block_id, intent_name)
                    for phrase in skip:  # skip words after a command, with the intent's label
                        net.link(net.text(tail, " " + phrase, None, None), tail)
        if not finals:
            raise ValueError(f"{self.what}: no sentence template left to compile")
        return self._words(finals)

    def _words(self, finals: List[int]) -> SentencesGrammar:
        """Pieces -> words: from every word boundary (the start, and every state after a space),
        each path of pieces up to the next space (or an end) spells one word arc."""
        net = self.net
        final_set = set(finals)
        builder = _Builder({}, {}, self.what)
        builder.num_states = net.n
        boundaries, seen = [0], {0}
        emitted = set()
        eps_in: Dict[int, List[int]] = {}
        intents = [b[0] for b in self.blocks]

        def label(slot):  # the slot's name, qualified by its list only where two lists fill it
            if slot is None:
                return None
            name, key = slot
            return name if len(self._slot_keys[name]) == 1 else f"{name}@{key}"

        def emit(b, c, text, slot, block, tail):
            if not text:
                if (b, c) not in emitted:
                    emitted.add((b, c))
                    builder.eps.append((b, c, 0.0))
                    eps_in.setdefault(c, []).append(b)
                return
            if _DIGIT.search(text):  # "1/2", "4000k": written forms nobody speaks; their paths end here
                return
            intent = intents[block] if block is not None else (tail or "")
            key = (b, c, text, slot, intent)
            if key not in emitted:
                emitted.add(key)
                builder.arcs.append(WordArc(b, c, text, 0.0, intent, label(slot)))

        while boundaries:
            b = boundaries.pop()
            paths = 0
            # (state, text, slot, block, intent of a tail passed)
            stack: List[Tuple[int, str, Optional[_SlotKey], Optional[int], Optional[str]]] = [(b, "", None, None, None)]
            while stack:
                u, text, slot, block, tail = stack.pop()
                paths += 1
                if paths > MAX_WORD_PATHS:
                    raise ValueError(
                        f"{self.what}: more than {MAX_WORD_PATHS} spellings of one word position "
                        "(glued alternatives such as (a|b)(c|d)... multiply)"
                    )
                if u in self._tail:
                    tail = self._tail[u][1]
                if u in final_set:
                    emit(b, u, text, slot, block, tail)
                for dst, kind, piece, pslot, pblock in net.out.get(u, ()):
                    if kind == "space":
                        emit(b, dst, text, slot, block, tail)
                        if dst not in seen:
                            seen.add(dst)
                            boundaries.append(dst)
                    elif kind == "piece":
                        stack.append(
                            (
                                dst,
                                text + piece,
                                slot if slot is not None else pslot,
                                block if block is not None else pblock,
                                tail,
                            )
                        )
                    else:
                        stack.append((dst, text, slot, block, tail))
        if not builder.arcs:
            raise ValueError(f"{self.what}: the sentences spell no word")
        # the block whose sentences end at a state: its tail, or a tail reached by empty words
        block_of: Dict[int, int] = {}
        for tail_state in finals:
            block_id = self._tail[tail_state][0]
            todo = [tail_state]
            while todo:
                u = todo.pop()
                if u in block_of:
                    continue
                block_of[u] = block_id
                todo.extend(eps_in.get(u, ()))
        grammar = builder.finish(finals)
        final_block = {new: block_of[old] for new, old in enumerate(builder.kept_states) if old in block_of}
        num_states, arcs, finals_out, final_block = _merge_equivalent(grammar, final_block)
        if num_states > limits.current().max_grammar_states:
            raise limits.exceeded(f"{self.what}: states the sentences compile to", num_states, "max_grammar_states")
        values = {label(slot): table for slot, table in self.values.items()}
        names = {label(slot): slot[0] for slot in self.values}
        table = json.dumps(
            {
                "blocks": self.blocks,
                "final_block": {str(k): v for k, v in final_block.items()},
                "values": values,
                "names": names,
            },
            sort_keys=True,
            default=_json_value,
        )
        return SentencesGrammar(num_states, arcs, finals_out, language=self.language, table=table)


def _merge_equivalent(grammar: Grammar, final_block: Dict[int, int]):
    """Merges states that have the same future: the same finality and data block, and the same
    arcs (word, labels, weight) to states already known to be the same. Bottom-up, from each state
    on its own, so only equivalent states merge (cycles, from repeated skip words, stay apart).
    Templates of an intent share their endings this way, and a range at the end of several
    templates is spelled once: Home Assistant's English set loses half its arcs."""
    n = grammar.num_states
    finals = set(grammar.finals)
    out: List[List[WordArc]] = [[] for _ in range(n)]
    preds: List[List[int]] = [[] for _ in range(n)]
    for arc in grammar.arcs:
        out[arc.src].append(arc)
        preds[arc.dst].append(arc.src)
    rep = list(range(n))

    def find(x: int) -> int:
        root = x
        while rep[root] != root:
            root = rep[root]
        while rep[x] != root:
            rep[x], x = root, rep[x]
        return root

    # a worklist, from the last states (sentence ends) back: a state whose key (arcs to the
    # current representatives) is already taken joins that state, and its predecessors are redone
    table: Dict[tuple, int] = {}
    todo = list(range(1, n))  # state 0 (the start) stays itself
    queued = [True] * n
    while todo:
        s = todo.pop()
        queued[s] = False
        if find(s) != s:
            continue
        key = (
            s in finals,
            final_block.get(s),
            frozenset((a.word, a.intent, a.slot, a.weight, find(a.dst)) for a in out[s]),
        )
        other = table.get(key)
        if other is None or find(other) == s:
            table[key] = s
            continue
        rep[s] = find(other)
        for p in preds[s]:
            if p and not queued[p] and find(p) == p:
                queued[p] = True
                todo.append(p)
    roots = sorted({find(s) for s in range(n)})
    index = {r: i for i, r in enumerate(roots)}  # state 0 is the smallest root: it stays 0
    cls = [index[find(s)] for s in range(n)]
    merged = {(cls[a.src], cls[a.dst], a.word, a.intent, a.slot): a.weight for a in grammar.arcs}
    arcs = tuple(
        WordArc(src, dst, word, weight, intent, slot)
        for (src, dst, word, intent, slot), weight in sorted(merged.items(), key=lambda kv: kv[0][:3])
    )
    blocks = {cls[s]: b for s, b in final_block.items()}
    return len(roots), arcs, tuple(sorted({cls[s] for s in finals})), blocks


def _json_value(value):
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"slot value {value!r} cannot be stored")
