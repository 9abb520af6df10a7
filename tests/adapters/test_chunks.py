"""Reply splitting for platform limits: boundaries, code fences, nothing lost."""

from __future__ import annotations

import re

import pytest

from opencell.adapters._chunks import split_message


def words(text: str) -> list[str]:
    return [w for w in re.split(r"\s+", text.replace("```python", "").replace("```", ""))
            if w]


def test_short_text_is_one_piece() -> None:
    assert split_message("hello", 2000) == ["hello"]
    assert split_message("", 2000) == []


def test_prefers_paragraphs_then_lines_then_words() -> None:
    para = "a" * 60 + "\n\n" + "b" * 60
    assert split_message(para, 100) == ["a" * 60, "b" * 60]
    lines = "x" * 60 + "\n" + "y" * 60
    assert split_message(lines, 100) == ["x" * 60, "y" * 60]
    sentence = " ".join(["word"] * 60)
    pieces = split_message(sentence, 100)
    assert all(len(p) <= 100 for p in pieces)
    assert all(not p.startswith(" ") and not p.endswith(" ") for p in pieces)
    assert words(" ".join(pieces)) == words(sentence)


def test_an_unbroken_run_is_cut_hard() -> None:
    pieces = split_message("z" * 250, 100)
    assert "".join(pieces) == "z" * 250 and all(len(p) <= 100 for p in pieces)


def test_code_blocks_are_closed_and_reopened() -> None:
    code = "\n".join(f"print({i})" for i in range(80))
    text = f"Here you go:\n\n```python\n{code}\n```\nDone."
    pieces = split_message(text, 200)
    assert len(pieces) > 3
    for piece in pieces:
        assert len(piece) <= 200
        assert piece.count("```") % 2 == 0, piece  # every piece renders on its own
    assert all(p.startswith("```python") for p in pieces[2:-1])
    assert words("\n".join(pieces)) == words(text)


@pytest.mark.parametrize("limit", [50, 120, 2000, 4000])
def test_nothing_is_lost_on_mixed_text(limit: int) -> None:
    text = ("# Title\n\nSome **bold** text and a [link](http://x.y).\n\n"
            "```\nline one\nline two\n```\n\n- item one\n- item two\n") * 30
    pieces = split_message(text, limit)
    assert all(len(p) <= limit for p in pieces)
    assert words("\n".join(pieces)) == words(text)
