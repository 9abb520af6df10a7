"""`opencell chat` with bytes that are not UTF-8: every line is answered and recorded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, clean_env, opencell

BAD_INPUT = b"hi\ncaf\xe9\n2+2?\n"
"""The issue's reproduction: the middle line holds a Latin-1 byte, invalid as UTF-8."""


def chat(stdin: bytes, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "opencell", "chat", "bots/demo.yaml"],
                          input=stdin, capture_output=True, env=clean_env(**env), cwd=REPO,
                          timeout=60, check=False)


@pytest.mark.parametrize("io_encoding", ["", "utf-8:strict", "ascii:strict"])
def test_a_bad_byte_is_replaced_answered_and_the_chat_goes_on(io_encoding: str) -> None:
    extra = {"PYTHONIOENCODING": io_encoding} if io_encoding else {}
    result = chat(BAD_INPUT, **extra)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode("utf-8").splitlines()
    assert len(lines) == 3, (result.stdout, result.stderr)
    assert "caf" in lines[1] and "went wrong" not in lines[1]
    assert "calculator returned: 4" in lines[2]
    stderr = result.stderr.decode("utf-8", "replace")
    assert "queue_full" not in stderr and "unstored" not in stderr, stderr

    # Every record of the chat landed: one session, closed, three turns, the text repaired.
    listing = opencell("sessions", "--json")
    assert listing.returncode == 0, listing.stderr
    sessions = json.loads(listing.stdout)["sessions"]
    assert [(s["status"], s["messages"], s["end_reason"]) for s in sessions] == [
        ("success", 3, "shutdown")]
    detail = json.loads(opencell("session", sessions[0]["id"], "--json").stdout)
    inputs = [e["input"] for e in detail["timeline"] if e["kind"] == "message"]
    assert inputs == ["hi", "caf\ufffd", "2+2?"]
