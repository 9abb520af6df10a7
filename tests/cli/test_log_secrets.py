"""A real `opencell run` at --log-level debug, on Discord, with an agent whose tool leaks the
model key: no configured secret and no known token shape appears in stderr, in what the model
reads, or in what the chat user is sent (issue 11 §5).

The fake Discord answers the bot's reply with a 401 whose body echoes the Authorization header
(the `turn failed` warning printed the bot token at the default level); the tool raises with
the bot's own API key in its message; at debug level httpx, the anthropic client and
discord.py log their requests and payloads.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from opencell.observability.redact import KNOWN_SECRET_VARIABLES, Redactor
from tests.conftest import REPO, clean_env
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.llm_server import FakeLLMServer, RecordedRequest, Step, reply, tool_call
from tests.observability.test_redact import ANTHROPIC, DISCORD, SLACK_APP, SLACK_BOT

SECRETS = {  # every secret the configuration can name; shaped ones in their real shapes
    **{name: f"opaque-{name.lower().replace('_', '-')}-0042" for name in KNOWN_SECRET_VARIABLES},
    "ANTHROPIC_API_KEY": ANTHROPIC, "DISCORD_TOKEN": DISCORD, "SLACK_BOT_TOKEN": SLACK_BOT,
    "SLACK_APP_TOKEN": SLACK_APP, "BILLING_SERVICE_PASSWORD": "billing-pass-0042",
}

GATEWAY_SHIM = """\
import os
if os.environ.get("TEST_DISCORD_GATEWAY"):  # a test seam: discord.py has no gateway setting
    import discord.gateway
    import yarl
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["TEST_DISCORD_GATEWAY"])
"""

LEAKY_TOOL = """\
import os

def leak() -> str:
    \"\"\"Logs in to the billing service.\"\"\"
    raise RuntimeError("billing 401: rejected x-api-key " + os.environ["ANTHROPIC_API_KEY"]
                       + " and password " + os.environ["BILLING_SERVICE_PASSWORD"])
"""


class EchoingDiscord(FakeDiscord):
    """Refuses every reply with a 401 whose body quotes the request's credentials."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refused: list[dict[str, Any]] = []
        self.refused_event = asyncio.Event()

    async def _post_message(self, request: web.Request) -> web.Response:
        self.refused.append(await request.json())
        self.refused_event.set()
        body = {"message": f"401: Unauthorized (sent {request.headers['Authorization']})",
                "code": 0}
        return web.json_response(body, status=401, content_type="application/json")


def leak_then_echo(request: RecordedRequest) -> Step:
    """Calls the leaky tool, then repeats its result to the user, as models do."""
    if not request.tool_results:
        return tool_call("leak", {}, id="call_leak_1")
    return reply(f"The tool said: {request.tool_results[0][1]}")


async def test_debug_logs_the_model_and_the_user_never_see_a_secret(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(GATEWAY_SHIM)
    (tmp_path / "leakytool.py").write_text(LEAKY_TOOL)
    bot = tmp_path / "agent.yaml"
    bot.write_text(
        "name: agent\ntype: agent\nllm: {provider: claude, max_retries: 0, timeout: 10s}\n"
        "platforms:\n  discord: {token: \"${DISCORD_TOKEN}\", respond_to: all,"
        " ready_timeout: 20s}\n"
        "tools: [{name: leak, python: 'leakytool:leak'}]\n")
    async with EchoingDiscord(token=DISCORD) as discord_fake, \
            FakeLLMServer(model=leak_then_echo) as llm:
        env = clean_env(**SECRETS, ANTHROPIC_BASE_URL=llm.url,
                        OPENCELL_DISCORD_API_BASE=discord_fake.api_base,
                        TEST_DISCORD_GATEWAY=discord_fake.gateway,
                        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "opencell", "--log-level", "debug", "run", str(bot),
            cwd=tmp_path, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            await discord_fake.wait_connected(timeout=30)
            await discord_fake.dispatch("MESSAGE_CREATE",
                                        discord_fake.message("pay my bill", mention_bot=False))
            await asyncio.wait_for(discord_fake.refused_event.wait(), 30)
            proc.send_signal(signal.SIGTERM)
            stdout, stderr_bytes = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    stderr = stderr_bytes.decode()

    # It really ran at debug level, through the third-party loggers, and the turn failed.
    for logger in ("DEBUG discord.", "DEBUG httpcore", "DEBUG anthropic."):
        assert logger in stderr, f"no '{logger}' line in stderr:\n{stderr[-3000:]}"
    assert "WARNING opencell.adapters" in stderr
    assert "401: Unauthorized (sent Bot [REDACTED" in stderr
    # No configured secret, in any log line, at any level.
    leaked = [name for name, value in SECRETS.items() if value in stderr]
    assert leaked == [], f"stderr shows {leaked}"
    # No known token shape either: redacting the output again changes nothing.
    again = Redactor.from_env(SECRETS).redact(stderr)
    assert again == stderr, [line for line in stderr.splitlines()
                             if Redactor().redact(line) != line][:5]

    # The model read the tool's error redacted, and so could not repeat the key to the user.
    (_, tool_error), = llm.requests[1].tool_results
    assert "rejected x-api-key [REDACTED:" in tool_error
    assert "password [REDACTED:secret]" in tool_error
    (attempt,) = discord_fake.refused
    assert attempt["content"].startswith("The tool said: ")
    for value in SECRETS.values():
        assert value not in attempt["content"]
        assert all(value not in str(r.json) for r in llm.requests)
