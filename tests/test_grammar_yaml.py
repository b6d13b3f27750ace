"""Intent files are real YAML (read with PyYAML's safe loader), and hostile ones get clear ValueErrors."""

import re
import time

import pytest
import yaml

from edge_speech import grammars, yaml_reading
from edge_speech.grammars import Grammar

LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if hasattr(yaml, "CSafeLoader") else [])


@pytest.fixture(params=LOADERS, ids=lambda loader: loader.__name__)
def loader(request, monkeypatch):
    """Both PyYAML loaders: libyaml where it is built, and the pure-Python one that replaces it elsewhere."""
    monkeypatch.setattr(yaml_reading, "LOADER", request.param)
    return request.param


def _sentences(text):
    return set(Grammar.from_yaml(text).sentences(8))


def test_anchors_and_aliases_share_slot_values_and_templates(loader):
    text = """
slots:
  room: &rooms [kitchen, bedroom]
  place: *rooms
intents:
  LightOn: &light
    - turn on the {room} light
  Go:
    - go to the {place}
  Lamp: *light
"""
    rooms = ("kitchen", "bedroom")
    expected = {(intent, f"turn on the {r} light") for intent in ("LightOn", "Lamp") for r in rooms}
    expected |= {("Go", f"go to the {r}") for r in rooms}
    assert _sentences(text) == expected


def test_block_scalars_flow_lists_and_comments(loader):
    text = """\
# lights and timers
intents:   # the commands
  LightOn: ["turn on the light", 'switch on the light']  # a flow list of templates
  Timer:
    - >
      set a timer
      for {minutes} minutes
    - |
      start a {minutes} minute timer
slots:
  minutes: [5, ten]   # numbers are read as written
  # a comment between entries
"""
    expected = {("LightOn", "turn on the light"), ("LightOn", "switch on the light")}
    expected |= {("Timer", f"set a timer for {m} minutes") for m in ("5", "ten")}
    expected |= {("Timer", f"start a {m} minute timer") for m in ("5", "ten")}
    assert _sentences(text) == expected


def test_yaml_booleans_and_numbers_are_slot_text_as_written(loader):
    text = "intents:\n  Switch:\n    - turn {state}\nslots:\n  state: [on, off, 1.50]\n"
    assert _sentences(text) == {("Switch", "turn on"), ("Switch", "turn off"), ("Switch", "turn 1.50")}


def test_template_errors_point_inside_quotes_and_block_scalars(loader):
    with pytest.raises(ValueError, match=re.escape("line 3, column 16: expected ')'")):
        Grammar.from_yaml('intents:\n  A:\n    - "turn (on"\n')
    with pytest.raises(ValueError, match=re.escape("line 4, column 15: expected ')'")):
        Grammar.from_yaml("intents:\n  A:\n    - |\n      turn (on\n")


def _billion_laughs(levels: int = 9) -> str:
    lines = ["slots:", "  l0: &l0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines + ["intents:", "  A:", f"    - say {{l{levels}}}", ""])


@pytest.mark.parametrize(
    "text",
    [
        _billion_laughs(),
        "intents:\n  A: &a [x, *a]\n",  # an alias inside its own anchor: endless
    ],
    ids=["billion-laughs", "self-alias"],
)
def test_alias_expansion_is_bounded(loader, text):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=f"expands to more than {grammars.MAX_INTENT_YAML_NODES} nodes"):
        Grammar.from_yaml(text)
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize(
    "text",
    [
        "intents:\n  A: " + "[" * 1000 + "]" * 1000 + "\n",
        "intents:\n" + "".join("  " * (depth + 1) + f"k{depth}:\n" for depth in range(1000)) + "  " * 1001 + "x\n",
        "intents:\n  A:\n" + "".join("  " * (depth + 2) + "-\n" for depth in range(1000)) + "  " * 1002 + "x\n",
    ],
    ids=["flow", "block-mappings", "block-lists"],
)
def test_nesting_1000_deep_is_a_value_error_naming_the_depth(loader, text):
    with pytest.raises(ValueError, match="nested too deep"):
        Grammar.from_yaml(text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("intents: [a, b]\n", "line 1, column 10: 'intents' must be a mapping of names, found a list"),
        ("intents: 5\n", "line 1, column 10: 'intents' must be a mapping of names, found a number"),
        ("- intents\n", "line 1, column 1: expected 'intents:' or 'slots:' at the top, found a list"),
        ("intents:\n  A: {x: y}\n", "line 2, column 6: the templates of 'A' must be a list, found a mapping"),
        ("intents:\n  A:\n    - [a, b]\n", "line 3, column 7: a template of 'A' must be text, found a list"),
        (
            "intents:\n  A: [x]\nslots:\n  room: kitchen\n",
            "line 4, column 9: slot 'room' must list its values, found text",
        ),
        ("intents:\n  A: [x]\nslots: [a]\n", "line 3, column 8: 'slots' must be a mapping of names, found a list"),
        ("intents:\n  A: [x]\nslots:\n  s: [a]\n  s: [b]\n", "line 5, column 3: 's' is defined twice"),
        ("intents:\n  ~: [x]\n", "line 2, column 3: a name must be text, found nothing"),
        ("intents:\n\tA: [x]\n", "line 2, column 1: tabs are not allowed for indentation"),
        ("intents:\n  A: [x\n", "intents: line 3, column 1:"),
        ("intents:\n  A: [x]\n---\nslots: {}\n", "intents: line 3, column 1: but found another document"),
        ("intents:\n  A: [x, *nope]\n", "line 2, column 10: found undefined alias"),
    ],
)
def test_wrong_shapes_name_the_key_line_and_column(loader, text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Grammar.from_yaml(text)


def test_python_tags_are_refused_and_never_run(loader, tmp_path):
    marker = tmp_path / "ran"
    for text in (
        f'intents:\n  A:\n    - !!python/object/apply:os.system ["touch {marker}"]\n',
        "intents:\n  A:\n    - !!python/name:os.system x\n",
    ):
        with pytest.raises(ValueError, match="a template of 'A'"):
            Grammar.from_yaml(text)
    assert not marker.exists()


def test_oversized_text_is_refused_before_parsing(loader):
    text = "intents:\n  A:\n    - " + "a " * (grammars.MAX_INTENT_YAML_CHARS // 2) + "\n"
    with pytest.raises(ValueError, match=f"at most {grammars.MAX_INTENT_YAML_CHARS}"):
        Grammar.from_yaml(text)
