"""The dashboard's replay, versions and what-if views, served by a real server on loopback."""

from __future__ import annotations

import asyncio
import re

import httpx

from opencell.runtime import BotRuntime
from tests.dashboard.conftest import ServerThread
from tests.fakes.llm_server import FakeLLMServer
from tests.replay.conftest import HAIKU, agent_config, flushed, observability, play, record

XSS = "<script>alert('r')</script>"


def recorded_and_replayed(store_url: str) -> tuple[str, str]:
    async def run() -> tuple[str, str]:
        async with FakeLLMServer(model=play) as fake:
            obs = observability(store_url)
            runtime = BotRuntime(agent_config(fake.url), observability=obs)
            source = await record(runtime, "alice", "my order?", XSS)
            flushed(obs)
            result = await runtime.replay(source, model=HAIKU, system_prompt="Be brief.")
            await runtime.aclose()
            flushed(obs)
            obs.close()
            return source, result.replay_id

    return asyncio.run(run())


def test_session_replays_side_by_side_versions_and_what_if(isolated_store: str) -> None:
    source, replay = recorded_and_replayed(isolated_store)
    with ServerThread(isolated_store) as served, httpx.Client(base_url=served.url) as client:
        page = client.get(f"/sessions/{source}").text
        assert f'href="/sessions/{source}/replays/{replay}"' in page
        priced = client.get(f"/sessions/{source}", params={"what_if": "openai:gpt-4o-mini"})
        assert priced.status_code == 200
        assert re.search(r"data-what-if>\$0\.\d+<", priced.text)
        assert "cannot tell the provider" in client.get(
            f"/sessions/{source}", params={"what_if": "mystery"}).text

        side = client.get(f"/sessions/{source}/replays/{replay}")
        assert side.status_code == 200
        assert side.text.count('class="changed"') == 2  # both replies name the other model
        assert '<ins class="diff-ins">' in side.text and '<del class="diff-del">' in side.text
        assert XSS not in side.text and "&lt;script&gt;alert(" in side.text
        assert "what changed</a>" in side.text
        assert client.get(f"/sessions/{replay}/replays/{source}").status_code == 404

        versions = client.get("/versions", params={"bot": "shop"}).text
        assert versions.count("data-version=") == 2
        assert 'data-origin="replay"' in versions and 'data-origin="live"' in versions
        a, b = re.findall(r'data-version="([0-9a-f]{64})"', versions)
        diff = client.get("/versions/diff", params={"bot": "shop", "a": b[:10], "b": a[:10]})
        assert diff.status_code == 200
        changed = re.findall(r'<span class="diff-(ins|del)">([^<]*)</span>', diff.text)
        assert ("ins", "+  &#34;system_prompt&#34;: &#34;Be brief.&#34;,") in changed, changed
        assert ("ins", f"+  &#34;model&#34;: &#34;{HAIKU}&#34;,") in changed, changed
        assert client.get("/versions/diff", params={"bot": "shop", "a": "ffff",
                                                    "b": a}).status_code == 404

        costs = client.get("/costs", params={"what_if": "openai:gpt-4o-mini"}).text
        assert 'id="what-if-total"' in costs and 'class="num nowrap what-if"' in costs
