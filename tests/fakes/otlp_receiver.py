"""A loopback OTLP/HTTP traces receiver that decodes what it gets with opentelemetry-proto.

``OTLPReceiver`` answers ``POST /v1/traces`` (protobuf ``ExportTraceServiceRequest``) and keeps
every request's headers and decoded spans. It runs a ``ThreadingHTTPServer`` on its own thread,
so sync and async tests can use it alike. ``down()`` stops listening (clients then get
"connection refused") and ``up()`` listens again on the same port; ``blackhole = True`` makes
it accept requests and never answer (until it stops).

The base class :class:`LoopbackServer` is shared with the fake AgentOps API.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def value_of(value: AnyValue) -> Any:
    """An OTLP AnyValue as a Python value (arrays as lists)."""
    which = value.WhichOneof("value")
    if which == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in value.kvlist_value.values}
    return None if which is None else getattr(value, which)


@dataclass
class ReceivedSpan:
    """One decoded span; ``attributes`` keeps the order it was sent in."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    start: int
    end: int
    attributes: list[tuple[str, Any]]
    status_code: int
    status_message: str
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any] = field(default_factory=dict)

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.attributes)

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self.attributes]


def decode(body: bytes) -> list[ReceivedSpan]:
    """Every span of an ``ExportTraceServiceRequest``."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: value_of(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(ReceivedSpan(
                    name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(), kind=span.kind,
                    start=span.start_time_unix_nano, end=span.end_time_unix_nano,
                    attributes=[(kv.key, value_of(kv.value)) for kv in span.attributes],
                    status_code=span.status.code, status_message=span.status.message,
                    events=[(e.name, {kv.key: value_of(kv.value) for kv in e.attributes})
                            for e in span.events],
                    resource=resource))
    return spans


@dataclass
class Received:
    """One request to the traces path."""

    headers: dict[str, str]
    spans: list[ReceivedSpan]
    status: int
    body: bytes = b""
    """The body as it came over the wire (gzip-compressed when the client said so)."""


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 that can go down and come back on its port."""

    def __init__(self) -> None:
        self.port = 0
        self.blackhole = False
        self.held = 0
        """Requests the blackhole holds right now (unanswered; released at ``stop``)."""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._release = threading.Event()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(self, method: str, path: str, headers: dict[str, str],
               body: bytes) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request. Subclasses answer here."""
        raise NotImplementedError

    def up(self) -> None:
        """Listen (again, on the same port once one was chosen)."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if owner.blackhole:
                    with owner.lock:
                        owner.held += 1
                    owner._release.wait(30)
                    with owner.lock:
                        owner.held -= 1
                    return
                status, content_type, payload = owner.handle(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.02})
        self._thread.start()

    def down(self) -> None:
        """Stop listening: connections are refused until :meth:`up`."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def start(self) -> LoopbackServer:
        self.up()
        return self

    def stop(self) -> None:
        self._release.set()
        self.down()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class OTLPReceiver(LoopbackServer):
    """Accepts OTLP/HTTP protobuf traces on ``/v1/traces``; ``status`` sets the answer."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Received] = []
        self.status = 200
        self.reject_empty = False
        """Answer 400 to an export holding no spans (MLflow does)."""

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self.lock:
            return [span for r in self.requests if 200 <= r.status < 300 for span in r.spans]

    def handle(self, method: str, path: str, headers: dict[str, str],
               body: bytes) -> tuple[int, str, bytes]:
        if path != "/v1/traces":
            return 404, "text/plain", b"not found"
        wire = body
        if headers.get("content-encoding") == "gzip":  # as a Collector does
            body = gzip.decompress(body)
        spans = decode(body)
        status = 400 if self.reject_empty and not spans else self.status  # as MLflow does
        with self.lock:
            self.requests.append(Received(headers, spans, status, wire))
        return (status, "application/x-protobuf",
                ExportTraceServiceResponse().SerializeToString())
