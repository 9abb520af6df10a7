"""Suite-wide fixtures: every test gets its own store, and no real network is ever used."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from opencell.observability import facade
from tests.fakes.postgres import PostgresServer, server_from_env

REPO = Path(__file__).resolve().parent.parent

SECRET_VARS = (
    "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL",
    "MOONSHOT_API_KEY", "MOONSHOT_BASE_URL", "DISCORD_TOKEN", "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "AGENTOPS_API_KEY", "AGENTOPS_ENABLED",
    "AGENTOPS_ENDPOINT", "AGENTOPS_EXPORTER_ENDPOINT", "AGENTOPS_APP_URL",
    "AGENTOPS_TAGS", "OTEL_EXPORTER_OTLP_ENDPOINT", "OPENCELL_DASHBOARD_TOKEN",
    "OPENCELL_CONFIG", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy",
)


@pytest.fixture(autouse=True)
def isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite store per test, and no provider keys from the developer's shell."""
    for name in SECRET_VARS:
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite:///{tmp_path / 'opencell.db'}"
    monkeypatch.setenv("OPENCELL_DATABASE_URL", url)
    yield url
    current = facade._default
    facade.install(None)
    if current is not None:
        current.close(timeout=2.0)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL for the whole run (tests/fakes/postgres.py), started on first use.

    Without PostgreSQL binaries the PostgreSQL tests skip, unless ``OPENCELL_REQUIRE_POSTGRES=1``
    (CI), where that is an error.
    """
    try:
        server = server_from_env()
    except RuntimeError as exc:
        if os.environ.get("OPENCELL_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here (OPENCELL_REQUIRE_POSTGRES=1): {exc}")
        pytest.skip(f"no PostgreSQL: {exc}")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty PostgreSQL schema for this test, also set as ``OPENCELL_DATABASE_URL``."""
    url = postgres_server.fresh_url()
    monkeypatch.setenv("OPENCELL_DATABASE_URL", url)
    return url


STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
"""The parameters of a fixture that runs a test once per store."""


def on_both_stores(request: pytest.FixtureRequest, isolated_store: str) -> str:
    """For a suite's ``conftest.py``: ``isolated_store = pytest.fixture(params=STORES,
    autouse=True, name="isolated_store")(on_both_stores)`` runs every test of that suite on
    SQLite and on PostgreSQL (tests marked ``sqlite_only`` keep the SQLite run only)."""
    if request.param == "sqlite":
        return isolated_store
    return str(request.getfixturevalue("postgres_url"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the PostgreSQL run of tests marked ``sqlite_only`` (they test SQLite itself), and
    the SQLite run of tests that ask for ``postgres_url`` themselves (PostgreSQL-only)."""
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_postgres = "postgresql" in (params.get("isolated_store"), params.get("store_url"))
        postgres_only = params.get("isolated_store") == "sqlite" and "postgres_url" in getattr(
            item, "fixturenames", ())
        if postgres_only or (on_postgres and item.get_closest_marker("sqlite_only")):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, isolated_store: str) -> str:
    """Run the test once on SQLite and once on PostgreSQL; the URL is the process default too."""
    if request.param == "sqlite":
        return isolated_store
    return str(request.getfixturevalue("postgres_url"))


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for an `opencell` subprocess: no secrets, no proxies, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARS}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def opencell(*args: str, stdin: str = "", env: Mapping[str, str] | None = None,
             cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real `opencell` command (as `python -m opencell`) and capture its output."""
    return subprocess.run([sys.executable, "-m", "opencell", *args], input=stdin,
                          capture_output=True, text=True, env=dict(env or clean_env()),
                          cwd=cwd or REPO, timeout=timeout, check=False)
