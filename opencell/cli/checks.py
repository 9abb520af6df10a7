"""``opencell doctor``'s checks: config, each bot's secrets, the store, and each exporter.

Every check gives one :class:`Check`: passed or not, one line saying what was found, and for
a failure one line saying what to fix. Checks never raise; the command prints them and exits
non-zero when any failed. Secrets are never printed, only the names of their variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opencell.config import AgentOpsConfig, BotConfig, OpenCellConfig, OTLPConfig
    from opencell.exporters.otlp import OTLPTarget


@dataclass(frozen=True, slots=True)
class Check:
    """One check's verdict. ``ok=None`` is information (nothing to check, e.g. an exporter
    that is off)."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""


def run_checks(config_path: Path | None, bots: Sequence[Path],
               env: Mapping[str, str] | None = None, timeout: float = 5.0) -> list[Check]:
    """Every check, in the order a user would fix them."""
    env = os.environ if env is None else env
    config, checks = check_config(config_path, env)
    for path in bots:
        checks.extend(check_bot(path, env))
    if config is not None:
        checks.extend(check_store(config.store.url))
        from opencell.exporters import effective_settings

        agentops, otlp = effective_settings(config, env)
        checks.append(check_agentops(agentops, timeout))
        checks.append(check_otlp(otlp, timeout, env))
    return checks


def check_config(path: Path | None, env: Mapping[str, str]
                 ) -> tuple[OpenCellConfig | None, list[Check]]:
    from opencell.config import load_config
    from opencell.errors import ConfigError

    explicit = path or env.get("OPENCELL_CONFIG")
    shown = str(explicit or "config/opencell.yaml")
    try:
        config = load_config(path, env)
    except ConfigError as exc:
        return None, [Check("config", False, exc.located().replace("\n", "; "),
                            f"fix {shown} (`opencell validate {shown}` lists every problem)")]
    found = explicit or Path("config/opencell.yaml").exists()
    detail = f"{shown} is valid" if found else "no config/opencell.yaml: using the defaults"
    return config, [Check("config", True, detail)]


def check_bot(path: Path, env: Mapping[str, str]) -> list[Check]:
    from opencell.errors import ConfigError
    from opencell.loading import load_bot

    try:
        bot = load_bot(path, env)
    except ConfigError as exc:
        return [Check(f"bot {path}", False, exc.located().replace("\n", "; "),
                      f"fix the file (`opencell validate {path}`)")]
    checks = [Check(f"bot {bot.name}", True, f"{path} is valid ({bot.type}, "
                    f"{bot.llm.provider}/{bot.llm.model})")]
    checks.extend(check_secrets(bot, env))
    return checks


def check_secrets(bot: BotConfig, env: Mapping[str, str]) -> list[Check]:
    """The model's API key and each platform's tokens the bot needs."""
    from opencell.errors import ConfigError, MissingSecretError
    from opencell.llm import create_llm

    checks = []
    name = f"bot {bot.name} secrets"
    try:
        create_llm(bot.llm, bot=bot.name, env=env)
    except MissingSecretError as exc:
        checks.append(Check(name, False, exc.message))
    except ConfigError as exc:
        checks.append(Check(name, False, exc.message))
    platforms = bot.platforms
    if platforms.discord is not None and not platforms.discord.token.strip():
        checks.append(Check(name, False, f"bot '{bot.name}' needs DISCORD_TOKEN "
                            "(platforms.discord.token) and it is empty",
                            "set DISCORD_TOKEN in the environment or in .env"))
    if platforms.slack is not None and not platforms.slack.bot_token.strip():
        checks.append(Check(name, False, f"bot '{bot.name}' needs SLACK_BOT_TOKEN "
                            "(platforms.slack.bot_token) and it is empty",
                            "set SLACK_BOT_TOKEN in the environment or in .env"))
    if not checks:
        checks.append(Check(name, True, "every secret the bot needs is set"))
    return checks


def check_store(url: str) -> list[Check]:
    """The store opens, its schema is current, and it takes a write."""
    import sqlalchemy as sa

    from opencell.errors import StoreError
    from opencell.store import Store
    from opencell.store.migrations import LATEST

    fix = "check OPENCELL_DATABASE_URL (or store.url), the directory's permissions and space"
    try:
        store = Store.open(url)
    except StoreError as exc:
        return [Check("store", False, str(exc), fix)]
    try:
        version = store.schema_version()
        store.check_writable()
        from opencell.exporters import cursor_rows

        backlog = ", ".join(f"{row['exporter']}: {row['pending_events']} event(s) pending"
                            for row in cursor_rows(store))
        recording = check_recording(store.losses())
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).replace("\n", " ")
        return [Check("store", False, f"{store.url} cannot be written: {reason}", fix)]
    finally:
        store.close()
    detail = f"{store.url} (schema v{version}/{LATEST}, writable)"
    return [Check("store", True, detail + (f"; outbox {backlog}" if backlog else "")),
            recording]


def check_recording(losses: Mapping[str, Any]) -> Check:
    """What recorders dropped (by reason) and what the store quarantined, ever.

    Information rather than a failure: the loss happened in the past and is not fixed by
    anything done now; the line says where to look.
    """
    dropped: Mapping[str, int] = losses.get("dropped") or {}
    quarantined = int(losses.get("quarantined") or 0)
    if not quarantined and not any(dropped.values()):
        return Check("recording", True, "no record dropped or quarantined")
    parts = []
    if any(dropped.values()):
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items()) if n)
        parts.append(f"{sum(dropped.values())} record(s) dropped ({reasons})")
    if quarantined:
        last = losses.get("last_quarantined") or {}
        parts.append(f"{quarantined} record(s) quarantined (table quarantine; latest: "
                     f"{last.get('kind')} of session {last.get('session_id')}: "
                     f"{str(last.get('reason'))[:120]})")
    return Check("recording", None, "; ".join(parts))


def check_agentops(config: AgentOpsConfig, timeout: float) -> Check:
    """The key authenticates and the traces URL takes (an empty) export with the token."""
    from opencell.exporters.agentops import authenticate

    if not config.enabled:
        return Check("AgentOps", None, "export off (AGENTOPS_ENABLED is not true)")
    outcome, token, project = authenticate(config.endpoint, config.api_key, timeout)
    if not outcome.ok or token is None:
        return Check("AgentOps", False, outcome.error or "authentication failed")
    problem = _post_empty_export(config.exporter_endpoint, {"Authorization": f"Bearer {token}"},
                                 timeout)
    if problem:
        return Check("AgentOps", False, f"authenticated, but the traces URL "
                     f"{config.exporter_endpoint} {problem}",
                     "check AGENTOPS_EXPORTER_ENDPOINT")
    return Check("AgentOps", True, f"key accepted (project {project}); traces URL "
                 f"{config.exporter_endpoint} reachable")


def check_otlp(config: OTLPConfig, timeout: float,
               env: Mapping[str, str] | None = None) -> Check:
    """The OTLP endpoint takes a minimal valid export (one span) with the configured headers,
    as the exporter would send it (the ``OTEL_*`` variables applied)."""
    from opencell.exporters.otlp import otlp_target

    if not config.endpoint.strip():
        return Check("OTLP", None, "export off (OTEL_EXPORTER_OTLP_ENDPOINT is not set)")
    target = otlp_target(config, env or {})
    problem = _post_probe(target, timeout)
    if problem:
        fix = "check observability.otlp.headers" if "rejected" in problem else \
            "check OTEL_EXPORTER_OTLP_ENDPOINT and that the collector runs"
        return Check("OTLP", False, f"{target.url} {problem}", fix)
    return Check("OTLP", True, f"{target.url} reachable (accepted a probe span)")


def _post_probe(target: OTLPTarget, timeout: float) -> str | None:
    """None when the endpoint answers 2xx to a one-span export, else what went wrong."""
    import time

    import requests

    from opencell.exporters import describe_failure as describe
    from opencell.exporters.otlp import probe_body

    headers = {**target.headers, "Content-Type": "application/x-protobuf"}
    if target.gzip:
        headers["Content-Encoding"] = "gzip"
    try:
        response = requests.post(target.url, data=probe_body(target, time.time()),
                                 timeout=timeout, headers=headers)
    except requests.RequestException as exc:
        return f"cannot be reached ({describe(exc)})"
    if response.status_code in (401, 403):
        return f"rejected the credentials (HTTP {response.status_code})"
    if not 200 <= response.status_code < 300:
        return f"answered HTTP {response.status_code}"
    return None


def _post_empty_export(url: str, headers: Mapping[str, str], timeout: float) -> str | None:
    """None when ``url`` answers 2xx to an export holding no spans (AgentOps: a probe span
    would count as a session), else what went wrong."""
    import requests
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from opencell.exporters import describe_failure as describe

    body = ExportTraceServiceRequest().SerializeToString()
    try:
        response = requests.post(url, data=body, timeout=timeout, headers={
            **headers, "Content-Type": "application/x-protobuf"})
    except requests.RequestException as exc:
        return f"cannot be reached ({describe(exc)})"
    if response.status_code in (401, 403):
        return f"rejected the credentials (HTTP {response.status_code})"
    if not 200 <= response.status_code < 300:
        return f"answered HTTP {response.status_code}"
    return None
