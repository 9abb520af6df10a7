"""A loopback fake of the AgentOps API: token auth and OTLP/HTTP protobuf traces.

``POST /v3/auth/token`` with ``{"api_key"}``: a key that is not a UUID → 400, an unknown key
→ 403, a known key → 200 ``{"token", "project_id", "project_prem_status"}`` as
``application/json``. ``POST /v1/traces`` needs ``Authorization: Bearer <token>`` with a token
it issued and has not revoked (else 401), and decodes the ``ExportTraceServiceRequest``.

Scripting: ``auth_status`` / ``traces_status`` force an answer (e.g. 500); ``expire_next``
answers the next traces request 401 and revokes every token issued so far (an expired JWT);
``reject_names`` answers 400 to a batch holding such a span; ``blackhole`` accepts and
never answers; ``down()``/``up()`` refuse connections and come back
on the same port. ``exports`` keeps every traces request; ``spans`` the accepted spans.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.fakes.otlp_receiver import LoopbackServer, Received, ReceivedSpan, decode

VALID_KEY = "6f1c2a4e-3b5d-4c7e-9f80-1a2b3c4d5e6f"
PROJECT = "proj-fake-1"


class FakeAgentOps(LoopbackServer):
    def __init__(self, keys: tuple[str, ...] = (VALID_KEY,)) -> None:
        super().__init__()
        self.keys = set(keys)
        self.auth_calls: list[tuple[str, int]] = []
        self.exports: list[Received] = []
        self.tokens: set[str] = set()
        self.auth_status: int | None = None
        self.traces_status: int | None = None
        self.expire_next = False
        self.reject_names: set[str] = set()
        """A traces request holding a span with one of these names is answered 400."""

    @property
    def traces_url(self) -> str:
        return f"{self.url}/v1/traces"

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self.lock:
            return [span for r in self.exports if r.status == 200 for span in r.spans]

    def handle(self, method: str, path: str, headers: dict[str, str],
               body: bytes) -> tuple[int, str, bytes]:
        if path == "/v3/auth/token":
            return self._auth(body)
        if path == "/v1/traces":
            return self._traces(headers, body)
        return 404, "application/json", b'{"error":"not found"}'

    def _auth(self, body: bytes) -> tuple[int, str, bytes]:
        try:
            key = str(json.loads(body)["api_key"])
        except (ValueError, KeyError, TypeError):
            key = ""
        status = self.auth_status
        if status is None:
            try:
                uuid.UUID(key)
                status = 200 if key in self.keys else 403
            except ValueError:
                status = 400
        with self.lock:
            self.auth_calls.append((key, status))
        if status != 200:
            return status, "application/json", json.dumps({"error": "no"}).encode()
        token = f"tok-{uuid.uuid4().hex}"
        with self.lock:
            self.tokens.add(token)
        answer: dict[str, Any] = {"token": token, "project_id": PROJECT,
                                  "project_prem_status": "free"}
        return 200, "application/json", json.dumps(answer).encode()

    def _traces(self, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        spans = decode(body)
        token = headers.get("authorization", "").removeprefix("Bearer ")
        with self.lock:
            if self.traces_status is not None:
                status = self.traces_status
            elif self.reject_names & {span.name for span in spans}:
                status = 400
            elif self.expire_next:
                self.expire_next = False
                self.tokens.clear()
                status = 401
            else:
                status = 200 if token in self.tokens else 401
            self.exports.append(Received(headers, spans, status))
        return (status, "application/x-protobuf",
                ExportTraceServiceResponse().SerializeToString())
