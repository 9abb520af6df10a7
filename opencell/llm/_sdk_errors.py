"""Translate the anthropic and openai SDKs' exceptions into OpenCell's ``LLMError`` tree.

Both SDKs are generated from the same template and share exception names (``RateLimitError``,
``APITimeoutError`` …), so one translation serves both; the caller passes the SDK module. The
SDKs retry by themselves: by the time an exception reaches us the retries are spent, and each
message says what the operator can change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import TypeVar

from opencell.errors import (
    LLMAuthError,
    LLMConnectionError,
    LLMError,
    LLMRateLimitError,
    LLMResponseError,
    LLMTimeoutError,
)
from opencell.llm.base import LLMResponse
from opencell.llm.streaming import broken_stream_message

_MAX_DETAIL = 300
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What an error message needs to know about the client that failed."""

    provider: str
    api_name: str
    """``Anthropic Messages API``, ``OpenAI-compatible chat completions API``."""
    base_url: str
    key_variable: str
    base_url_variable: str
    timeout: float
    max_retries: int
    secret: str
    """The API key, only so it can be scrubbed from anything we quote."""

    def scrub(self, text: str) -> str:
        """``text`` cut to a readable length, with the API key removed if it is quoted."""
        if self.secret:
            text = text.replace(self.secret, "[redacted]")
        return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "…"


def translate_sdk_error(exc: Exception, sdk: ModuleType, endpoint: Endpoint) -> LLMError:
    """The ``LLMError`` for an exception the SDK raised (raise it ``from exc``)."""
    status: int | None = getattr(exc, "status_code", None)
    request_id = _request_id(exc)
    detail = endpoint.scrub(_api_message(exc))
    said = f" ({status} {detail})" if detail else f" ({status})"
    n = endpoint.max_retries
    retries = f"after {n} {'retry' if n == 1 else 'retries'}" if n else "with retries off"
    cls: type[LLMError]
    if isinstance(exc, sdk.AuthenticationError):
        cls, message = LLMAuthError, (
            f"the API key was rejected{said}; check {endpoint.key_variable} "
            "(or llm.api_key in the bot's YAML)")
    elif isinstance(exc, sdk.PermissionDeniedError):
        cls, message = LLMAuthError, (
            f"the API key is not allowed to do this{said}; check that "
            f"{endpoint.key_variable} may use this model and endpoint")
    elif isinstance(exc, sdk.RateLimitError):
        cls, message = LLMRateLimitError, (
            f"rate limited{said} {retries}; send fewer requests, raise the account's "
            "limits or llm.max_retries")
    elif isinstance(exc, sdk.APITimeoutError):
        cls, message = LLMTimeoutError, (
            f"no answer from {endpoint.base_url} within {endpoint.timeout:g}s {retries}; "
            "raise llm.timeout or try again later")
    elif isinstance(exc, sdk.APIConnectionError):
        cause = endpoint.scrub(str(exc.__cause__ or exc))
        cls, message = LLMConnectionError, (
            f"could not connect to {endpoint.base_url} ({cause}) {retries}; check the network "
            f"and llm.base_url / {endpoint.base_url_variable}")
    elif isinstance(exc, sdk.APIStatusError):
        cls = LLMResponseError
        if status == 200:  # an error event inside a streamed answer that had begun
            message = f"the provider stopped the answer midway ({detail or 'error'}); try again"
        elif status is not None and status >= 500:
            message = f"the provider failed{said} {retries}; try again later"
        else:
            message = (f"the request was refused{said}; check llm.model and the bot's "
                       "llm settings")
    elif isinstance(exc, sdk.APIError):  # e.g. APIResponseValidationError
        return malformed_response(exc, endpoint, status=status, request_id=request_id)
    else:  # the SDK's own non-HTTP failures (credentials, configuration)
        cls, message = LLMResponseError, (
            f"the {endpoint.api_name} client failed: {endpoint.scrub(str(exc))}")
    return cls(message, provider=endpoint.provider, status=status, request_id=request_id)


def malformed_response(exc: BaseException, endpoint: Endpoint, *, status: int | None = None,
                       request_id: str | None = None) -> LLMResponseError:
    """An ``LLMResponseError`` for a body that is not JSON or lacks what the API promises."""
    what = endpoint.scrub(f"{type(exc).__name__}: {exc}")
    return LLMResponseError(
        f"could not read the response ({what}); is {endpoint.base_url} really an "
        f"{endpoint.api_name} endpoint?",
        provider=endpoint.provider, status=status, request_id=request_id,
    )


def read_response(parse: Callable[[T], LLMResponse], raw: T, endpoint: Endpoint
                  ) -> LLMResponse:
    """``parse(raw)``; a body missing what the API promises becomes an ``LLMResponseError``.

    Without strict validation the SDKs build models from whatever JSON came back, so a
    missing field only shows when it is read.
    """
    try:
        return parse(raw)
    except LLMError:
        raise
    except (AttributeError, TypeError, KeyError, ValueError, IndexError) as exc:
        raise malformed_response(exc, endpoint,
                                 request_id=getattr(raw, "_request_id", None)) from exc


def _request_id(exc: Exception) -> str | None:
    request_id = getattr(exc, "request_id", None)
    if isinstance(request_id, str):
        return request_id
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        found = headers.get("request-id") or headers.get("x-request-id")
        return str(found) if found else None
    return None


def _api_message(exc: Exception) -> str:
    """The provider's own explanation from the error body, if it sent one."""
    body = getattr(exc, "body", None)
    # Anthropic keeps the whole body ({"error": {...}}); openai keeps only the inner object.
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    if isinstance(body, str):
        return body.strip()
    return ""


@contextmanager
def stream_errors(sdk: ModuleType, base_error: type[Exception], endpoint: Endpoint,
                  provider: str) -> Iterator[None]:
    """How a streamed call's failures read, for every SDK: its own errors translated, a bad
    answer malformed, our errors as they are, anything else a connection broken mid-stream."""
    try:
        yield
    except base_error as exc:
        raise translate_sdk_error(exc, sdk, endpoint) from exc
    except ValueError as exc:  # the SDK's JSON decoding or model validation
        raise malformed_response(exc, endpoint) from exc
    except LLMError:
        raise
    except Exception as exc:  # noqa: BLE001 - the connection broke mid-stream
        raise LLMConnectionError(broken_stream_message(exc), provider=provider) from exc
