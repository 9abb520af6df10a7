"""Failed turns and error events are different counts, and every page and command that shows
both agrees on them and names them: a session whose bot reported errors it recovered from
(every turn answered) next to one whose turn failed."""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

import httpx
import pytest

from opencell.config import BotConfig, LLMConfig
from opencell.context import current_turn
from opencell.llm.base import LLMRequest, Usage
from opencell.observability.facade import AgentOpsFacade
from opencell.runtime import BotRuntime
from tests.conftest import clean_env, opencell
from tests.dashboard.conftest import SONNET, ServerThread, observability
from tests.fakes.function_llm import FunctionLLM, answer


async def record(url: str) -> dict[str, str]:
    """``recovered``: bot "steady", 2 turns, each answered after its own code reported a
    backend error it retried (2 error events, no failed turn). ``failed``: bot "broken",
    whose model raises: 1 failed turn, with its error event."""
    obs = observability(url)
    ops = AgentOpsFacade(obs)

    def retried(request: LLMRequest) -> Any:
        turn = current_turn.get()
        assert turn is not None and turn.session is not None
        ops.track_error(turn.session.id, error=TimeoutError("search backend timed out"),
                        context={"attempt": 1, "retried": True})
        return answer("Found it on the second try.", usage=Usage(100, 20), model=SONNET)

    def explode(request: LLMRequest) -> Any:
        raise RuntimeError("provider exploded")

    ids = {}
    for key, name, play in (("recovered", "steady", retried), ("failed", "broken", explode)):
        bot = BotConfig(name=name, llm=LLMConfig(provider="claude", model=SONNET))
        runtime = BotRuntime(bot, llm=FunctionLLM(play, provider="claude", model=SONNET),
                             observability=obs)
        ids[key] = await runtime.start_session("ann", "console")
        for text in (["find my order", "and the invoice"] if key == "recovered" else ["hi"]):
            await runtime.process_message(text)
        await runtime.end_session(success=key == "recovered")
        await runtime.aclose()
    obs.close()
    return ids


@pytest.fixture
def recorded(isolated_store: str) -> dict[str, str]:
    found: dict[str, dict[str, str]] = {}
    worker = threading.Thread(target=lambda: found.update(ids=asyncio.run(record(
        isolated_store))))
    worker.start()
    worker.join(60)
    return found["ids"]


def cell(html: str, anchor: str, column: str) -> str:
    """The text of the ``data-col=column`` cell in the element opened by ``anchor``."""
    start = html.index(anchor)
    found = re.search(rf'data-col="{column}"[^>]*>(.*?)</(?:td|dd)>', html[start:], re.S)
    assert found is not None, (anchor, column)
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def test_failed_turns_and_errors_agree_everywhere(recorded: dict[str, str],
                                                  isolated_store: str) -> None:
    recovered, failed = recorded["recovered"], recorded["failed"]
    with ServerThread(isolated_store) as served, httpx.Client(base_url=served.url) as client:
        api = {s["id"]: s for s in client.get("/api/sessions").json()["sessions"]}
        assert (api[recovered]["failed_turns"], api[recovered]["errors"]) == (0, 2)
        assert (api[failed]["failed_turns"], api[failed]["errors"]) == (1, 1)
        assert api[recovered]["status"] == "success" and api[failed]["status"] == "failed"

        listing = client.get("/sessions").text
        assert "Failed turns</th>" in listing and "Errors</th>" in listing
        for sid, want in ((recovered, ("0", "2")), (failed, ("1", "1"))):
            row = f'data-session-id="{sid}"'
            assert (cell(listing, row, "failed_turns"), cell(listing, row, "errors")) == want

        page = client.get(f"/sessions/{recovered}").text
        assert cell(page, "Summary", "failed_turns") == "0 of 2 turns"
        assert cell(page, "Summary", "errors") == "2 (every turn was answered)"
        page = client.get(f"/sessions/{failed}").text
        assert cell(page, "Summary", "failed_turns") == "1 of 1 turn"
        assert cell(page, "Summary", "errors") == "1"

        analytics = client.get("/analytics").text
        for bot, want in (("steady", ("0", "2")), ("broken", ("1", "1"))):
            row = f'<tr data-bot="{bot}">'
            assert (cell(analytics, row, "failed_turns"), cell(analytics, row, "errors")) == want
        assert "Failed turns</th>" in analytics and "Error events</th>" in analytics
        assert "there can be errors without a failed turn" in analytics
        bots = {b["bot"]: b for b in client.get("/api/analytics").json()["bots"]}
        assert (bots["steady"]["failed_turns"], bots["steady"]["errors"]) == (0, 2)
        assert (bots["broken"]["failed_turns"], bots["broken"]["errors"]) == (1, 1)
        shares = {s["name"]: s["values"][-1] for s in client.get(
            "/api/trends", params={"per": "day"}).json()["failed_turns"]["series"]}
        assert shares == {"all bots": pytest.approx(100 / 3, abs=0.01), "steady": 0.0,
                          "broken": 100.0}

    env = clean_env(OPENCELL_DATABASE_URL=isolated_store)
    listed = opencell("sessions", env=env)
    assert listed.returncode == 0, listed.stderr
    header, *rows = [line.split("\t") for line in listed.stdout.splitlines()]
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert (by_id[recovered]["fail"], by_id[recovered]["err"]) == ("0", "2")
    assert (by_id[failed]["fail"], by_id[failed]["err"]) == ("1", "1")
    shown = opencell("session", recovered, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "2 · 0 failed · 2 error events (every turn answered)" in shown.stdout
    shown = opencell("session", failed, env=env)
    assert "1 · 1 failed · 1 error event" in shown.stdout
