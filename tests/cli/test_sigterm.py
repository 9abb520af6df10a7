"""SIGTERM to `opencell run` in the middle of a turn: the reply still goes out, exit 0, no loss."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

from tests.conftest import REPO, clean_env, opencell
from tests.fakes.llm_server import FakeLLMServer, delayed, reply
from tests.fakes.ports import free_port
from tests.fakes.slack_server import BOT_TOKEN, SIGNING_SECRET, FakeSlack, event, post_event
from tests.fakes.waiting import WAIT, until


async def until_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


async def test_sigterm_during_a_turn_still_replies_and_exits_zero(tmp_path: Path) -> None:
    port = free_port()
    async with FakeSlack() as slack, FakeLLMServer([delayed(1.5, reply("late but sent"))]) as llm:
        bot = tmp_path / "slackbot.yaml"
        bot.write_text(
            "name: slackbot\nllm: {provider: claude, max_retries: 0, timeout: 10s}\n"
            "platforms:\n  slack:\n"
            f"    bot_token: {BOT_TOKEN}\n    signing_secret: {SIGNING_SECRET}\n"
            f"    host: 127.0.0.1\n    port: {port}\n    api_base_url: {slack.api_url}\n")
        env = clean_env(ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=llm.url)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "opencell", "run", str(bot), cwd=REPO, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            await until_listening(port)
            status, _ = await post_event(f"http://127.0.0.1:{port}/slack/events",
                                         event("app_mention", text="<@U0FAKEBOT> hello"))
            assert status == 200
            await until(lambda: bool(llm.requests), "the turn reaching the model")
            proc.send_signal(signal.SIGTERM)  # the model is still "thinking" (1.5 s)
            code = await asyncio.wait_for(proc.wait(), WAIT)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
        assert code == 0, stderr
        assert "Traceback" not in stderr
        assert [p["text"] for p in slack.posts] == ["late but sent"]

    sessions = json.loads(opencell("sessions", "--json").stdout)["sessions"]
    assert [(s["platform"], s["end_reason"], s["messages"], s["llm_calls"])
            for s in sessions] == [("slack", "shutdown", 1, 1)]
