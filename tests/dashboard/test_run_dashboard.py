"""``opencell run --dashboard``: the same dashboard inside the App, with the recorder's metrics;
``opencell dashboard`` on the command line."""

from __future__ import annotations

import socket

import httpx
import pytest

from opencell.adapters.base import Adapter
from opencell.app import App
from opencell.config import BotConfig, LLMConfig, OpenCellConfig
from opencell.errors import ConfigError
from opencell.messages import ConversationKey, IncomingMessage, Reply
from opencell.types import Deliver
from tests.conftest import opencell


class QuietAdapter(Adapter):
    platform = "console"

    async def start(self, deliver: Deliver) -> None:
        return None

    async def stop(self) -> None:
        self.finished.set()

    async def send(self, reply: Reply) -> None:
        return None


def config(url: str, **dashboard: object) -> OpenCellConfig:
    return OpenCellConfig.model_validate({"store": {"url": url},
                                          "dashboard": {"port": 0, **dashboard}})


def app_for(url: str, **dashboard: object) -> App:
    bot = BotConfig(name="demo", llm=LLMConfig(provider="offline"))
    return App([bot], config(url, **dashboard), platforms={"demo": ["console"]},
               adapter_factory=lambda b, _p: QuietAdapter(b), dashboard=True)


async def test_the_app_serves_its_own_store_with_recorder_metrics(isolated_store: str) -> None:
    app = app_for(isolated_store)
    assert app.dashboard is not None
    await app.start()
    url = app.dashboard.url.rstrip("/")
    port = app.dashboard.port
    key = ConversationKey(bot="demo", platform="console", channel="tty", user="zoe")
    await app.dispatch(IncomingMessage(key=key, text="hello", user_id="zoe"))
    assert app.observability.recorder.flush(5)
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        sessions = (await client.get("/api/sessions")).json()["sessions"]
        assert [(s["bot"], s["user_id"], s["status"]) for s in sessions] == [
            ("demo", "zoe", "open")]
        metrics = (await client.get("/metrics")).text
        assert 'opencell_sessions_open{bot="demo"} 1' in metrics
        assert "opencell_recorder_written_total" in metrics
        assert "opencell_recorder_dropped_total 0" in metrics
    await app.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_the_app_refuses_a_public_dashboard_without_a_token(isolated_store: str) -> None:
    with pytest.raises(ConfigError, match="OPENCELL_DASHBOARD_TOKEN"):
        app_for(isolated_store, host="0.0.0.0")


def test_the_commands_are_there_and_help_stays_light() -> None:
    result = opencell("--help")
    assert result.returncode == 0 and "dashboard" in result.stdout
    run_help = opencell("run", "--help")
    assert "--dashboard" in run_help.stdout
    probe = opencell("dashboard", "--help")
    assert "--host" in probe.stdout and "--port" in probe.stdout
    import subprocess
    import sys

    from tests.conftest import REPO, clean_env

    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; from opencell import cli; "
         "print(sorted(m for m in ('fastapi', 'uvicorn', 'jinja2', 'starlette') "
         "if m in sys.modules))"], capture_output=True, text=True, env=clean_env(), cwd=REPO,
        check=True)
    assert loaded.stdout.strip() == "[]"


def test_a_busy_port_is_one_line(isolated_store: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = opencell("dashboard", "--port", str(port), timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"error: cannot serve the dashboard on 127.0.0.1:{port}: "
                                      "Address already in use; pick another --port or stop "
                                      "what uses it")
