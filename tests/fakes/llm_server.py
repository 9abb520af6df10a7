"""A loopback fake of the Anthropic Messages API and the OpenAI Chat Completions API.

The real SDKs talk to it over HTTP, so their request building, retries, timeouts and response
parsing all run for real. What the "model" answers is scripted by the test, in one of two ways
(like pydantic-ai's ``FunctionModel``):

* a queue of :class:`Step` objects (``FakeLLMServer(steps=[...])`` or ``fake.push(...)``), one
  consumed per HTTP request — retries consume steps too, which is how a test scripts
  "500, then success";
* a function ``(RecordedRequest) -> Step`` that plays the model (``FakeLLMServer(model=fn)``),
  used once the queue is empty.

With neither, the fake answers ``echo: <last user text>``. Steps are provider-neutral: the same
``Step`` is rendered as an Anthropic or an OpenAI body depending on the path requested.

Every request is logged in ``fake.requests`` as ``(path, json, headers)`` so tests assert on
what the SDK actually sent. Run it inside the test's loop (``await fake.start()``) or in a
background thread with its own loop (``fake.start_in_thread()``) for subprocess tests.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from aiohttp import web
from multidict import CIMultiDict

from tests.fakes._threaded import ServesInThread

ANTHROPIC_PATH = "/v1/messages"
OPENAI_PATH = "/v1/chat/completions"
JSON = "application/json"  # exactly: some clients reject a charset parameter


@dataclass(frozen=True)
class FakeToolCall:
    """A tool call the scripted model makes. ``id`` defaults to a per-server counter."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    """A mapping, or a raw string (OpenAI only) to send arguments that are not valid JSON."""
    id: str | None = None


@dataclass(frozen=True)
class Step:
    """One scripted answer of the fake model to one HTTP request.

    The default is a 200 with ``text``. ``status`` != 200 sends that provider's error body;
    ``body`` replaces the whole body (a mapping is JSON-encoded, bytes/str are sent as is) to
    script malformed answers; ``delay`` waits before answering (to trigger client timeouts).
    """

    text: str = ""
    tool_calls: tuple[FakeToolCall, ...] = ()
    usage: Mapping[str, Any] | None = None
    """Merged into the body's ``usage`` as is, in the API's own keys (e.g. ``prompt_tokens``)."""
    usage_omit: tuple[str, ...] = ()
    """Keys of the default ``usage`` to leave out of the body (e.g. ``("output_tokens",)``)."""
    no_usage: Literal["absent", "null"] | None = None
    """``absent``: the body has no ``usage`` key at all; ``null``: ``"usage": null``."""
    model: str | None = None
    """The model answered; defaults to the model requested."""
    stop_reason: str | None = None
    """Anthropic ``stop_reason`` / OpenAI ``finish_reason``; defaults from ``tool_calls``."""
    status: int = 200
    error_message: str = "scripted error"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: Mapping[str, Any] | bytes | str | None = None
    content_type: str = JSON
    chunk_size: int = 0
    """Streamed requests: characters of text per delta (0: the whole text in one delta)."""
    chunk_delay: float = 0.0
    """Streamed requests: seconds between two deltas."""
    break_after: int | None = None
    """Streamed requests: after this many text deltas the stream ends with an error event
    (Anthropic ``overloaded_error``, OpenAI an ``error`` chunk), as a provider failing
    mid-answer does."""


def reply(text: str, **kwargs: Any) -> Step:
    """A plain text answer."""
    return Step(text=text, **kwargs)


def tool_call(name: str, arguments: Mapping[str, Any] | str | None = None, *,
              id: str | None = None, text: str = "", **kwargs: Any) -> Step:
    """An answer that asks for one tool."""
    call = FakeToolCall(name, {} if arguments is None else arguments, id)
    return Step(text=text, tool_calls=(call,), **kwargs)


def error(status: int, message: str = "scripted error", *,
          headers: Mapping[str, str] | None = None) -> Step:
    """An HTTP error in the provider's error shape, e.g. ``error(429, headers={...})``."""
    return Step(status=status, error_message=message, headers=dict(headers or {}))


def streamed(text: str, chunk_size: int = 8, *, delay: float = 0.0,
             break_after: int | None = None, **kwargs: Any) -> Step:
    """A text answer that a streamed request receives in deltas of ``chunk_size``."""
    return Step(text=text, chunk_size=chunk_size, chunk_delay=delay,
                break_after=break_after, **kwargs)


def malformed(body: Mapping[str, Any] | bytes | str = b"{not json",
              content_type: str = JSON) -> Step:
    """A 200 whose body is not what the API promises."""
    return Step(body=body, content_type=content_type)


def delayed(seconds: float, then: Step | None = None) -> Step:
    """``then`` (default: a text reply), answered only after ``seconds``."""
    return dataclasses.replace(then or Step(text="late"), delay=seconds)


class RecordedRequest(NamedTuple):
    """One request as the fake received it; unpacks as ``(path, json, headers)``.

    ``headers`` is case-insensitive, like HTTP.
    """

    path: str
    json: Any
    headers: Mapping[str, str]

    @property
    def api(self) -> str:
        """``anthropic`` or ``openai``."""
        return "anthropic" if self.path == ANTHROPIC_PATH else "openai"

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.json.get("messages", [])) if isinstance(self.json, dict) else []

    @property
    def last_user_text(self) -> str:
        """The text of the last user message, in either API's shape."""
        for message in reversed(self.messages):
            if message.get("role") != "user":
                continue
            content = message.get("content")
            if isinstance(content, str):
                return content
            texts = [b.get("text", "") for b in content or [] if b.get("type") == "text"]
            if texts:
                return "".join(texts)
        return ""

    @property
    def tool_results(self) -> list[tuple[str, str]]:
        """``(tool call id, content)`` of the tool results at the end of the conversation."""
        results: list[tuple[str, str]] = []
        messages = self.messages
        if self.api == "openai":
            for message in reversed(messages):
                if message.get("role") != "tool":
                    break
                results.insert(0, (message["tool_call_id"], str(message.get("content", ""))))
            return results
        if messages and isinstance(messages[-1].get("content"), list):
            for block in messages[-1]["content"]:
                if block.get("type") == "tool_result":
                    results.append((block["tool_use_id"], _block_text(block.get("content"))))
        return results


ModelFunction = Callable[[RecordedRequest], Step]


class FakeLLMServer(ServesInThread):
    """Loopback fake of both LLM APIs, scripted by steps or by a function that plays the model."""

    def __init__(self, steps: Iterable[Step] = (), *, model: ModelFunction | None = None) -> None:
        self.model = model
        self.requests: list[RecordedRequest] = []
        self._steps: collections.deque[Step] = collections.deque(steps)
        self._counter = 0
        self.api_keys: set[str] | None = None
        """Keys ``GET /v1/models`` accepts (None: any); others get 401 as the APIs answer."""
        self.hold: Callable[[RecordedRequest], Awaitable[None]] | None = None
        """Awaited before each answer (in-loop mode): a test keeps a call in flight until
        it says so, e.g. the calls of one worker, told apart by their API key."""
        self._lock = threading.Lock()  # the thread mode mutates from two threads
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self.port = 0

    # ------------------------------------------------------------------ scripting

    def push(self, *steps: Step) -> None:
        """Queue answers; each HTTP request (retries included) consumes one."""
        self._steps.extend(steps)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` — the Anthropic SDK's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def openai_base_url(self) -> str:
        """The OpenAI SDK expects the ``/v1`` in its base URL."""
        return f"{self.url}/v1"

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> str:
        """Serve on 127.0.0.1:0 in the running loop; returns the base URL."""
        app = web.Application()
        app.router.add_post(ANTHROPIC_PATH, self._handle)
        app.router.add_post(OPENAI_PATH, self._handle)
        app.router.add_get("/v1/models", self._models)
        self._closing = asyncio.Event()
        # A short shutdown timeout: delayed handlers are released by ``_closing`` anyway.
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.url

    async def close(self) -> None:
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeLLMServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start_in_thread(self) -> str:
        """Serve from a daemon thread with its own loop (for CLI subprocess tests)."""
        self._serve_in_thread("fake-llm-server")
        return self.url

    # ------------------------------------------------------------------ serving

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        recorded = RecordedRequest(request.path, body, CIMultiDict(request.headers))
        with self._lock:
            self.requests.append(recorded)
            self._counter += 1
            n = self._counter
            step = self._steps.popleft() if self._steps else None
        if step is None:
            step = self.model(recorded) if self.model else Step(
                text=f"echo: {recorded.last_user_text}")
        if self.hold is not None:
            await self.hold(recorded)
        if step.delay and self._closing is not None:
            try:
                await asyncio.wait_for(self._closing.wait(), step.delay)
            except TimeoutError:
                pass
        if (isinstance(body, dict) and body.get("stream") and step.status == 200
                and step.body is None):
            return await _stream(request, recorded, step, n)
        return self._render(recorded, step, n)

    async def _models(self, request: web.Request) -> web.Response:
        """The model list both APIs offer: what ``opencell doctor`` calls to try a key."""
        recorded = RecordedRequest(request.path, {}, CIMultiDict(request.headers))
        with self._lock:
            self.requests.append(recorded)
        key = request.headers.get("x-api-key") or request.headers.get(
            "Authorization", "").removeprefix("Bearer ")
        if self.api_keys is not None and key not in self.api_keys:
            return web.json_response({"type": "error", "error": {
                "type": "authentication_error", "message": "invalid x-api-key"}}, status=401)
        return web.json_response({"data": [{"id": "fake-model", "type": "model"}],
                                  "object": "list"})

    def _render(self, request: RecordedRequest, step: Step, n: int) -> web.Response:
        anthropic = request.api == "anthropic"
        headers = {"Content-Type": step.content_type,
                   ("request-id" if anthropic else "x-request-id"): f"req_fake_{n}"}
        headers.update(step.headers)
        if step.body is not None:
            payload: Any = step.body
        elif step.status != 200:
            payload = _error_body(anthropic, step)
        else:
            payload = (_anthropic_body if anthropic else _openai_body)(request, step, n)
        if isinstance(payload, Mapping):
            payload = json.dumps(payload)
        data = payload.encode() if isinstance(payload, str) else payload
        return web.Response(status=step.status, body=data, headers=headers)


def _block_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if isinstance(b, dict))


def _requested_model(request: RecordedRequest, step: Step) -> str:
    if step.model:
        return step.model
    return str(request.json.get("model", "fake-model")) if isinstance(request.json, dict) else ""


def _anthropic_body(request: RecordedRequest, step: Step, n: int) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if step.text:
        content.append({"type": "text", "text": step.text})
    for i, call in enumerate(step.tool_calls):
        content.append({"type": "tool_use", "id": call.id or f"toolu_fake_{n}_{i}",
                        "name": call.name, "input": call.arguments})
    usage: dict[str, Any] = {"input_tokens": 10, "output_tokens": 5,
                             "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    usage.update(step.usage or {})
    return _with_usage({
        "id": f"msg_fake_{n}", "type": "message", "role": "assistant",
        "model": _requested_model(request, step), "content": content,
        "stop_reason": step.stop_reason or ("tool_use" if step.tool_calls else "end_turn"),
        "stop_sequence": None,
    }, usage, step)


def _openai_body(request: RecordedRequest, step: Step, n: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": step.text or None}
    if step.tool_calls:
        message["tool_calls"] = [
            {"id": call.id or f"call_fake_{n}_{i}", "type": "function",
             "function": {"name": call.name, "arguments": call.arguments
                          if isinstance(call.arguments, str) else json.dumps(call.arguments)}}
            for i, call in enumerate(step.tool_calls)
        ]
    usage: dict[str, Any] = {"prompt_tokens": 10, "completion_tokens": 5,
                             "prompt_tokens_details": {"cached_tokens": 0}}
    usage.update(step.usage or {})
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int | float) and isinstance(completion, int | float):
        usage.setdefault("total_tokens", prompt + completion)
    finish = step.stop_reason or ("tool_calls" if step.tool_calls else "stop")
    return _with_usage({
        "id": f"chatcmpl-fake-{n}", "object": "chat.completion", "created": int(time.time()),
        "model": _requested_model(request, step),
        "choices": [{"index": 0, "message": message, "finish_reason": finish,
                     "logprobs": None}],
    }, usage, step)


def _with_usage(body: dict[str, Any], usage: dict[str, Any], step: Step) -> dict[str, Any]:
    """``body`` with ``usage`` as the step scripts it: whole, without some keys, null, absent."""
    if step.no_usage == "absent":
        return body
    if step.no_usage == "null":
        return body | {"usage": None}
    return body | {"usage": {k: v for k, v in usage.items() if k not in step.usage_omit}}


def _error_body(anthropic: bool, step: Step) -> dict[str, Any]:
    kinds = {400: "invalid_request_error", 401: "authentication_error",
             403: "permission_error", 404: "not_found_error", 429: "rate_limit_error",
             529: "overloaded_error"}
    kind = kinds.get(step.status, "api_error")
    if anthropic:
        return {"type": "error", "error": {"type": kind, "message": step.error_message}}
    return {"error": {"message": step.error_message, "type": kind, "param": None,
                      "code": kind}}


# ---------------------------------------------------------------------- streaming (SSE)


def _pieces(text: str, size: int) -> list[str]:
    if not text:
        return []
    if size <= 0:
        return [text]
    return [text[i:i + size] for i in range(0, len(text), size)]


async def _stream(http: web.Request, request: RecordedRequest, step: Step, n: int
                  ) -> web.StreamResponse:
    """The step as a server-sent event stream, in the requested API's own event shapes."""
    anthropic = request.api == "anthropic"
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        ("request-id" if anthropic else "x-request-id"): f"req_fake_{n}", **step.headers})
    await response.prepare(http)
    events = (_anthropic_events if anthropic else _openai_events)(request, step, n)
    for event in events:
        if event is None:  # a pause between two text deltas
            if step.chunk_delay:
                await asyncio.sleep(step.chunk_delay)
            continue
        name, data = event
        line = f"event: {name}\n" if name else ""
        await response.write(f"{line}data: {data}\n\n".encode())
    await response.write_eof()
    return response


SSE = tuple[str, str] | None


def _anthropic_events(request: RecordedRequest, step: Step, n: int) -> list[SSE]:
    body = _anthropic_body(request, step, n)
    usage = dict(body.get("usage") or {})
    start = {**body, "content": [], "stop_reason": None,
             "usage": {**usage, "output_tokens": 1}}
    out: list[SSE] = [("message_start", json.dumps({"type": "message_start",
                                                     "message": start}))]
    index = 0
    sent = 0
    for block in body["content"]:
        if block["type"] == "text":
            out.append(("content_block_start", json.dumps({
                "type": "content_block_start", "index": index,
                "content_block": {"type": "text", "text": ""}})))
            for piece in _pieces(block["text"], step.chunk_size):
                if step.break_after is not None and sent >= step.break_after:
                    out.append(("error", json.dumps({"type": "error", "error": {
                        "type": "overloaded_error", "message": "Overloaded"}})))
                    return out
                if sent:
                    out.append(None)
                out.append(("content_block_delta", json.dumps({
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": "text_delta", "text": piece}})))
                sent += 1
        else:
            out.append(("content_block_start", json.dumps({
                "type": "content_block_start", "index": index,
                "content_block": {**block, "input": {}}})))
            out.append(("content_block_delta", json.dumps({
                "type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta",
                          "partial_json": json.dumps(block["input"])}})))
        out.append(("content_block_stop", json.dumps({"type": "content_block_stop",
                                                       "index": index})))
        index += 1
    if step.break_after is not None and sent >= step.break_after:
        out.append(("error", json.dumps({"type": "error", "error": {
            "type": "overloaded_error", "message": "Overloaded"}})))
        return out
    out.append(("message_delta", json.dumps({
        "type": "message_delta",
        "delta": {"stop_reason": body["stop_reason"], "stop_sequence": None},
        "usage": {"output_tokens": usage.get("output_tokens", 0)}})))
    out.append(("message_stop", json.dumps({"type": "message_stop"})))
    return out


def _openai_events(request: RecordedRequest, step: Step, n: int) -> list[SSE]:
    body = _openai_body(request, step, n)
    head = {"id": body["id"], "object": "chat.completion.chunk", "created": body["created"],
            "model": body["model"]}
    choice = body["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> SSE:
        return ("", json.dumps({**head, "choices": [
            {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}))

    out: list[SSE] = [chunk({"role": "assistant", "content": ""})]
    sent = 0
    for piece in _pieces(message.get("content") or "", step.chunk_size):
        if step.break_after is not None and sent >= step.break_after:
            break
        if sent:
            out.append(None)
        out.append(chunk({"content": piece}))
        sent += 1
    if step.break_after is not None and sent >= step.break_after:
        out.append(("", json.dumps({"error": {"message": "The server had an error",
                                              "type": "server_error"}})))
        return out
    for i, call in enumerate(message.get("tool_calls") or []):
        out.append(chunk({"tool_calls": [{"index": i, **call}]}))
    out.append(chunk({}, choice["finish_reason"]))
    include = (request.json.get("stream_options") or {}).get("include_usage")
    if include and "usage" in body:
        out.append(("", json.dumps({**head, "choices": [], "usage": body["usage"]})))
    out.append(("", "[DONE]"))
    return out
