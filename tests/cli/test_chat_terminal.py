"""``opencell chat`` in a real pseudo-terminal: line editing, Markdown replies, a thinking
indicator, log lines kept out of the line being typed, and Ctrl-C that says what it does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.terminal import ANSI, Session
from tests.conftest import clean_env, opencell
from tests.fakes.llm_server import FakeLLMServer, Step, streamed

MARKDOWN = "Here is **bold** text.\n\n- first item\n- second item\n\n`code`"


@pytest.fixture
def model() -> Iterator[FakeLLMServer]:
    fake = FakeLLMServer()
    fake.start_in_thread()
    yield fake
    fake.stop_thread()


def claude_bot(tmp_path: Path, *, stream: bool = False) -> Path:
    """A Claude bot on the console, its answers streamed or sent whole."""
    bot = tmp_path / "bot.yaml"
    bot.write_text("name: helper\nllm: {provider: claude, model: claude-sonnet-4-20250514}\n"
                   f"stream: {str(stream).lower()}\n"
                   "platforms: {console: {prompt: 'you> '}}\n")
    return bot


def test_arrow_keys_edit_the_line_instead_of_reaching_the_model(
        tmp_path: Path, model: FakeLLMServer, isolated_store: str) -> None:
    model.push(Step(text=MARKDOWN))
    env = clean_env(ANTHROPIC_API_KEY="sk-ant-x", ANTHROPIC_BASE_URL=model.url,
                    OPENCELL_DATABASE_URL=isolated_store)
    chat = Session("chat", str(claude_bot(tmp_path)), columns=80, env=env)
    try:
        chat.wait_for("you> ")
        chat.type("helo wrld")
        chat.type("\x1b[D" * 3 + "o")  # three lefts, then the missing "o"
        chat.type("\x01" + "\x1b[C" * 3 + "l")  # Home, three rights, the missing "l"
        chat.type("\r")
        before = len(chat.text)
        screen = chat.wait_for("second item", after=before)
        # Markdown rendered: bullets instead of "- ", no ** left, the bot's name first.
        reply = screen[before:]
        assert "helper" in reply and "**" not in reply and "• first item" in reply
        chat.wait_for("you> ", after=before)
    finally:
        chat.close()
    (request,) = model.requests_to("/v1/messages")
    assert request.last_user_text == "hello world"


def test_a_streamed_reply_is_rendered_as_markdown_as_it_arrives(
        tmp_path: Path, model: FakeLLMServer, isolated_store: str) -> None:
    model.push(streamed(MARKDOWN, chunk_size=5, delay=0.05))
    env = clean_env(ANTHROPIC_API_KEY="sk-ant-x", ANTHROPIC_BASE_URL=model.url,
                    OPENCELL_DATABASE_URL=isolated_store)
    chat = Session("chat", str(claude_bot(tmp_path, stream=True)), columns=80, env=env)
    try:
        chat.wait_for("you> ")
        chat.type("format something\r")
        before, start = len(chat.raw), len(chat.text)
        screen = chat.wait_for("second item", after=start)
        # The next prompt may have come in the same read as the reply's end: look for it
        # after the reply, not after whatever the screen held by then.
        chat.wait_for("you> ", after=screen.index("second item", start))
    finally:
        chat.close()
    raw = chat.raw[before:].decode(errors="replace")
    # The live view redraws in place (erase line, cursor up) while pieces arrive; once the
    # reply is complete it gives way (its last erase) to the whole reply, rendered.
    frames, final = raw.rsplit("\x1b[2K", 1)
    assert "\x1b[1A" in frames and "• first item" in ANSI.sub("", frames), \
        "the reply was not rendered as it arrived"
    shown = ANSI.sub("", final).replace("\r", "")
    assert "• first item" in shown and "• second item" in shown, shown
    assert "**" not in shown and "- first" not in shown and "`" not in shown, shown
    assert "Here is bold text." in shown
    (request,) = model.requests_to("/v1/messages")
    assert request.json.get("stream") is True


def test_ctrl_c_during_a_turn_says_it_is_stopping_and_leaves_a_clean_line(
        tmp_path: Path, model: FakeLLMServer, isolated_store: str) -> None:
    model.push(Step(text="slow answer", delay=1.5))
    env = clean_env(ANTHROPIC_API_KEY="sk-ant-x", ANTHROPIC_BASE_URL=model.url,
                    OPENCELL_DATABASE_URL=isolated_store)
    chat = Session("chat", str(claude_bot(tmp_path)), columns=80, env=env)
    try:
        chat.wait_for("you> ")
        chat.type("take your time\r")
        chat.wait_for("thinking")
        chat.type("\x03")  # Ctrl-C
        chat.wait_for("stopping: letting the current turn finish")
        screen = chat.wait_for("slow answer")
    finally:
        code = chat.close()
    assert "Traceback" not in screen
    assert code in (0, 130, -9)


def test_piped_chat_prints_a_multi_line_reply_as_one_json_line(
        tmp_path: Path, model: FakeLLMServer, isolated_store: str) -> None:
    model.push(Step(text=MARKDOWN), Step(text="two"))
    env = clean_env(ANTHROPIC_API_KEY="sk-ant-x", ANTHROPIC_BASE_URL=model.url,
                    OPENCELL_DATABASE_URL=isolated_store)
    result = opencell("chat", str(claude_bot(tmp_path)), "--json", stdin="one\ntwo\n",
                      env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [json.loads(line) for line in lines] == [
        {"reply": MARKDOWN, "failed": False}, {"reply": "two", "failed": False}]


def test_a_piped_streamed_reply_stays_plain_text(
        tmp_path: Path, model: FakeLLMServer, isolated_store: str) -> None:
    model.push(streamed(MARKDOWN, chunk_size=5))
    env = clean_env(ANTHROPIC_API_KEY="sk-ant-x", ANTHROPIC_BASE_URL=model.url,
                    OPENCELL_DATABASE_URL=isolated_store)
    result = opencell("chat", str(claude_bot(tmp_path, stream=True)), stdin="one\n", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == MARKDOWN + "\n"  # as written, then the record separator


def test_two_console_bots_in_one_run_are_refused_with_a_reason(tmp_path: Path) -> None:
    for name in ("first", "second"):
        (tmp_path / f"{name}.yaml").write_text(
            f"name: {name}\nllm: {{provider: offline}}\nplatforms: {{console: {{}}}}\n")
    result = opencell("run", str(tmp_path / "first.yaml"), str(tmp_path / "second.yaml"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: bots first, second all name platforms.console")
