"""recipes/whisper_model/real_speech.py: drascula.dat's text groups parsed from a synthetic byte
string laid out as the game's engine reads it, the transcript rules, and (when the drascula
package is installed) the real file."""

from __future__ import annotations

import struct

import pytest

from recipes.whisper_model import real_speech

pytestmark = pytest.mark.recipe


def encode_language_block(lines):
    """One language block: line 0 empty at offset 0, line i >= 1 at start[i] (4-byte aligned),
    the 2 bytes before start[i] holding start[i+1] - start[i] (before start[1]: start[1] - 4)."""
    assert lines[0] == b""
    starts = [0, 8]
    for line in lines[1:]:
        starts.append(starts[-1] + (len(line) + 1 + 2 + 3) // 4 * 4)
    block = bytearray(starts[-1])
    struct.pack_into(">H", block, 2, starts[1] - 4)
    for i, line in enumerate(lines[1:], 1):
        block[starts[i] : starts[i] + len(line)] = line
        struct.pack_into(">H", block, starts[i] - 2, starts[i + 1] - starts[i])
    return bytes(block)


def encode_text_groups(groups_by_language):
    """[group][language][line] -> the file's tail: language count, then per group the line count
    and per language a 16-bit size and the block."""
    languages = len(groups_by_language[0])
    data = struct.pack(">H", languages)
    for group in groups_by_language:
        data += struct.pack(">H", len(group[0]))
        for lines in group:
            block = encode_language_block(lines)
            data += struct.pack(">H", len(block)) + block
    return data


ENGLISH = [[b"", b"THAT'S THE SECOND BIGGEST DOOR", b"NO, 28 DAYS", b"A TOUPE\x90!"], [b"", b"HEY IGOR"]]
SPANISH = [[b"", b"ES LA SEGUNDA PUERTA", b"NO", b"UN PELUQUIN"], [b"", b"OYE IGOR"]]


def test_text_groups_are_read_from_a_synthetic_file():
    prefix = b"DRASCULA" + bytes(range(40))  # other tables before the texts
    data = prefix + encode_text_groups([[ENGLISH[g], SPANISH[g]] for g in range(2)])
    groups = real_speech.read_text_groups(data, anchor=b"THAT'S THE SECOND BIGGEST")
    assert groups == [["", "THAT'S THE SECOND BIGGEST DOOR", "NO, 28 DAYS", "A TOUPEE!"], ["", "HEY IGOR"]]


def test_a_truncated_file_is_refused():
    data = b"xx" + encode_text_groups([[ENGLISH[g], SPANISH[g]] for g in range(2)])
    with pytest.raises(ValueError):
        real_speech.read_text_groups(data[:-5], anchor=b"THAT'S THE SECOND BIGGEST")
    with pytest.raises(ValueError):
        real_speech.read_text_groups(b"no texts here")


def test_transcript_rules():
    assert real_speech.spoken_text("NO, 28 DAYS") == ("no twenty eight days", "")
    assert real_speech.spoken_text("NOOO... YOUUU SKELETONNNN!")[0] == "no you skeleton"
    assert real_speech.spoken_text("A DOOR-FRAME, ISN'T IT?")[0] == "a door frame isn't it"
    assert real_speech.spoken_text("ROOM 501")[1] == "ambiguous number"
    assert real_speech.spoken_text("OMELETTE, 1.00")[1] == "ambiguous number"
    assert real_speech.spoken_text("...")[1] == "empty line"


def test_file_names_map_to_groups():
    assert real_speech.drascula_file_key("7.ALS") == ("N", 7)
    assert real_speech.drascula_file_key("BJ12.ALS") == ("BJ", 12)
    assert real_speech.drascula_file_key("VB3.ALS") == ("VB", 3)
    assert real_speech.drascula_file_key("S4.ALS") is None
    assert real_speech.drascula_file_key("1.ALG") is None


def test_rate_filter():
    assert real_speech.rate_problem("that's the second biggest door", 2.0) == ""
    assert real_speech.rate_problem("no", 0.5) == ""
    assert "too long for the audio" in real_speech.rate_problem("what are you talking about who is he", 1.0)
    assert "too long for the subtitle" in real_speech.rate_problem("come on", 3.0)


@pytest.mark.skipif(not (real_speech.DRASCULA_DIR / "drascula.dat").exists(), reason="drascula not installed")
def test_the_installed_drascula_dat():
    groups = real_speech.read_text_groups((real_speech.DRASCULA_DIR / "drascula.dat").read_bytes())
    assert len(groups) >= len(real_speech.DRASCULA_GROUP_PREFIXES)
    assert groups[0][0] == "" and groups[0][1].startswith("THAT'S THE SECOND BIGGEST")
    assert groups[1][1] == "HEY IGOR, HOW IS EVERYTHING GOING?"
