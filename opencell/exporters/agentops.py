"""The AgentOps exporter: each session as an AgentOps trace, in AgentOps' own protocol.

Authentication is ``POST {endpoint}/v3/auth/token`` with ``{"api_key"}``, answered with a
bearer token (30 days); spans go as OTLP/HTTP protobuf to the traces URL through
``opentelemetry-exporter-otlp-proto-http``'s ``OTLPSpanExporter`` with a session of its own.
No tracer provider is created or touched, and the ``agentops`` package is never imported
(DESIGN §4). A 401 from the traces URL fetches a new token and resends the batch.

The request carries only the OTLP content headers and our bearer token: headers the host
configured for its own collector (``OTEL_EXPORTER_OTLP_HEADERS``) are never sent to AgentOps.

The session's link in the AgentOps app is ``{app}/sessions?trace_id=<32 hex digits>``
(what the AgentOps SDK prints), where ``app`` is ``AGENTOPS_APP_URL`` or, for the hosted
service, ``https://app.agentops.ai``. It is logged when the session's root span is delivered
and returned by :func:`agentops_session_url`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan

from opencell.exporters._agentops_spans import AgentOpsSpans
from opencell.exporters._http import (
    Delivery,
    ExportSession,
    describe,
    quiet_otlp_logs,
    send_spans,
)
from opencell.exporters._spans import trace_id
from opencell.exporters.outbox import Outbox, StoredEvent

if TYPE_CHECKING:
    from opencell.config import AgentOpsConfig
    from opencell.llm.pricing import PriceBook

log = logging.getLogger("opencell.exporters.agentops")

AUTH_PATH = "/v3/auth/token"
HOSTED_APP_URL = "https://app.agentops.ai"
KEY_HELP = "copy it from the AgentOps app (Settings → Projects → API key)"
OTLP_HEADERS = frozenset({"content-type", "content-encoding", "user-agent", "content-length"})


def authenticate(endpoint: str, api_key: str, timeout: float = 10.0
                 ) -> tuple[Delivery, str | None, str | None]:
    """(outcome, token, project id) of ``POST {endpoint}/v3/auth/token``.

    The outcome's error is one line saying what to fix; it never contains the key or token.
    """
    if not api_key.strip():
        return Delivery(False, None, f"AGENTOPS_API_KEY is empty; {KEY_HELP}"), None, None
    url = endpoint.rstrip("/") + AUTH_PATH
    try:
        response = requests.post(url, json={"api_key": api_key.strip()}, timeout=timeout)
    except requests.RequestException as exc:
        return Delivery(False, None, f"cannot reach {url} ({describe(exc)})"), None, None
    status = response.status_code
    if status == 400:
        return Delivery(False, 400, "AGENTOPS_API_KEY is not an AgentOps API key (HTTP 400: "
                        f"expected a UUID); {KEY_HELP}"), None, None
    if status in (401, 403):
        return Delivery(False, 403, f"AGENTOPS_API_KEY was rejected by AgentOps (HTTP {status}"
                        f": unknown key); {KEY_HELP}"), None, None
    if not 200 <= status < 300:
        return Delivery(False, status, f"{url} answered HTTP {status}"), None, None
    try:
        body = response.json()
        token, project = str(body["token"]), body.get("project_id")
    except (ValueError, KeyError, TypeError):
        return Delivery(False, status, f"{url} answered without a token"), None, None
    return Delivery(True, status), token, None if project is None else str(project)


class AgentOpsExporter:
    """A :class:`~opencell.exporters._worker.SpanSink` for AgentOps."""

    name = "agentops"
    label = "[AgentOps]"

    def __init__(self, config: AgentOpsConfig, *, prices: PriceBook | None = None,
                 request_timeout: float = 10.0, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.endpoint = config.exporter_endpoint
        self.spans = AgentOpsSpans(tags=config.tags, content=config.export_content,
                                   prices=prices)
        quiet_otlp_logs()
        self._session = ExportSession(only_headers=OTLP_HEADERS)
        self._exporter = OTLPSpanExporter(endpoint=self.endpoint, session=self._session,
                                          timeout=request_timeout)
        # The OTLP exporter applies the host's OTEL_EXPORTER_OTLP_CERTIFICATE to the session;
        # AgentOps is a public endpoint verified against the system CAs.
        self._session.verify = True
        self._session.cert = None
        self.project_id: str | None = None
        self._initialized = False
        self.app_url = app_url(config, os.environ if env is None else env)

    def connect(self, timeout: float) -> Delivery:
        outcome, token, project = authenticate(self.config.endpoint, self.config.api_key,
                                               timeout)
        if not outcome.ok or token is None:
            self._session.bearer = None
            return outcome
        self._session.bearer = f"Bearer {token}"
        self.project_id = project
        if not self._initialized:
            self._initialized = True
            log.info("[AgentOps] Initialized successfully project_id=%s traces=%s", project,
                     self.endpoint)
        else:
            log.debug("[AgentOps] token renewed project_id=%s", project)
        return outcome

    def build(self, batch: Sequence[StoredEvent], outbox: Outbox) -> list[ReadableSpan]:
        return self.spans.build(batch, outbox)

    def send(self, spans: Sequence[ReadableSpan], timeout: float) -> Delivery:
        return send_spans(self._exporter, self._session, spans, timeout)

    def delivered(self, batch: Sequence[StoredEvent], spans: Sequence[ReadableSpan]) -> None:
        for span in spans:
            if span.parent is None and span.context is not None:
                session_id = str(span.attributes.get("trace.metadata.session_id", "")
                                 if span.attributes else "")
                log.info("[AgentOps] session exported session=%s url=%s", session_id,
                         self.url(span.context.trace_id))

    def url(self, trace: int) -> str | None:
        return None if self.app_url is None else f"{self.app_url}/sessions?trace_id={trace:032x}"

    def close(self) -> None:
        self._exporter.shutdown()  # type: ignore[no-untyped-call]


def app_url(config: AgentOpsConfig, env: Mapping[str, str]) -> str | None:
    """The AgentOps app's base URL: ``AGENTOPS_APP_URL``, else the hosted app when the API
    endpoint is the hosted one, else None (a self-hosted app's address is not derivable)."""
    explicit = (env.get("AGENTOPS_APP_URL") or "").strip().rstrip("/")
    if explicit:
        return explicit
    host = urlparse(config.endpoint).hostname or ""
    return HOSTED_APP_URL if host in ("api.agentops.ai", "agentops.ai") else None


def agentops_session_url(session_id: str, running: AgentOpsExporter | None = None
                         ) -> str | None:
    """The session's page in the AgentOps app, or None when AgentOps export is off (or its
    app address is unknown: set ``AGENTOPS_APP_URL`` for a self-hosted AgentOps).

    Uses the ``running`` exporter's settings, else ``config/opencell.yaml`` and the
    environment (so a separate ``opencell dashboard`` process links too). The link works once
    the session has ended and its root span was delivered.
    """
    if running is not None:
        return running.url(trace_id(session_id))
    try:
        from opencell.config import load_config

        config = load_config().observability.agentops
    except Exception:  # noqa: BLE001 - a link is optional; the dashboard must not fail on it
        return None
    if not config.enabled:
        return None
    base = app_url(config, os.environ)
    return None if base is None else f"{base}/sessions?trace_id={trace_id(session_id):032x}"
