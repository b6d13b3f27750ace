"""Bounded, safe YAML reading for the files users hand the runtime (intent grammars, Home
Assistant sentence templates).

PyYAML's safe loader constructs no Python objects beyond plain data, but hostile text can still
cost without bound: aliases let a short file stand for an exponential number of nodes ("billion
laughs"), and deep nesting exhausts the recursion limit. Here the text size is capped, the node
tree is composed first and walked with every alias counted again, and errors become ValueErrors
that name the file and the line and column.
"""

from __future__ import annotations

from typing import Any

import yaml

YAML_TAG = "tag:yaml.org,2002:"
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it; both are safe


def compose(text: str, what: str, max_chars: int, max_nodes: int, hint: str = ""):
    """The YAML node tree of ``text`` (nodes only, nothing constructed), bounded in size and expansion.

    ``what`` names the source in error messages; ``hint`` says what a real file needs."""
    if len(text) > max_chars:
        raise ValueError(f"{what}: the text has {len(text)} characters; at most {max_chars} are read")
    try:
        root = yaml.compose(text, Loader=LOADER)
    except RecursionError:
        raise ValueError(
            f"{what}: lists and mappings nested too deep to read" + (f" ({hint})" if hint else "")
        ) from None
    except yaml.YAMLError as err:
        raise error(err, text, what) from None
    walked, stack = 0, [root] if root is not None else []
    while stack:
        node = stack.pop()
        walked += 1
        if walked > max_nodes:
            raise ValueError(
                f"{what}: the document expands to more than {max_nodes} nodes (aliases repeating aliases?)"
            )
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
    return root


def load(text: str, what: str, max_chars: int, max_nodes: int) -> Any:
    """Plain data (dicts, lists, scalars) of ``text`` after :func:`compose`'s bounds have passed."""
    compose(text, what, max_chars, max_nodes)
    try:
        return yaml.load(text, Loader=LOADER)  # noqa: S506  (a safe loader: plain data only)
    except RecursionError:
        raise ValueError(f"{what}: lists and mappings nested too deep to read") from None
    except yaml.YAMLError as err:
        raise error(err, text, what) from None


def error(err: "yaml.YAMLError", text: str, what: str) -> ValueError:
    """A ValueError naming the line and column of a PyYAML error."""
    lines = text.splitlines()

    def source(line: int) -> str:
        return lines[line] if line < len(lines) else ""

    context_mark = getattr(err, "context_mark", None)
    mark = getattr(err, "problem_mark", None) or context_mark
    context, problem = getattr(err, "context", None), getattr(err, "problem", None) or str(err)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    if context == "while scanning a quoted scalar" and context_mark is not None:
        quote = context_mark.column
        start = _enclosing_flow_start(source(context_mark.line), quote)
        return ValueError(
            f"{what}: line {context_mark.line + 1}, column {start + 1}: unterminated quote "
            f"(the quote at column {quote + 1} is never closed)"
        )
    if "maximum nesting depth" in problem:
        return ValueError(f"{what}: {where}lists and mappings nested too deep ({problem})")
    if mark is not None and "cannot start any token" in problem and source(mark.line)[mark.column :][:1] == "\t":
        return ValueError(f"{what}: {where}tabs are not allowed for indentation")
    return ValueError(f"{what}: {where}{problem}" + (f" ({context})" if context else ""))


def _enclosing_flow_start(line: str, column: int) -> int:
    """The column of the innermost ``[``/``{`` still open before ``column`` on the line, else ``column``."""
    depth = 0
    for i in range(column - 1, -1, -1):
        if line[i] in "]}":
            depth += 1
        elif line[i] in "[{":
            if depth == 0:
                return i
            depth -= 1
    return column
