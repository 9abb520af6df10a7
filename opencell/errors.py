"""The one error tree of OpenCell: every failure the framework raises on purpose.

    OpenCellError
    ├── ConfigError               a bot or config file is wrong (file, line, field)
    │   └── MissingSecretError    a variable a configured bot needs is not set
    ├── PlatformError             an adapter cannot start or talk to its platform
    │   └── UnsupportedPlatformError
    ├── MiddlewareError           the chain was misused (e.g. added to after start)
    ├── LLMError                  a model call failed (provider, retryable)
    │   ├── LLMAuthError          bad or missing API key (401/403)
    │   ├── LLMRateLimitError     429 after the SDK's own retries
    │   ├── LLMTimeoutError       no answer within the configured timeout
    │   ├── LLMConnectionError    the endpoint could not be reached
    │   └── LLMResponseError      5xx, 4xx or a body we could not read
    ├── ToolError                 a tool call failed; the model sees the message
    │   ├── ToolNotAllowedError   not listed in the bot's YAML, or not for this user/host
    │   ├── ToolArgumentsError    the model's arguments do not fit the tool's schema
    │   ├── ToolTimeoutError      the tool ran past its timeout
    │   ├── ToolResultError       the tool answered with its own error (MCP isError)
    │   └── ToolExecutionError    the tool raised
    │       └── ToolUnavailableError  its MCP server is down or the call's connection broke
    ├── StoreError                the observability store cannot be opened or was misused
    │   └── AmbiguousSessionError an id prefix matches several sessions
    └── BudgetExceededError       an enforced budget stopped a model call before it was made

Messages say what went wrong and how to fix it.
"""

from __future__ import annotations


class OpenCellError(Exception):
    """Base of every error OpenCell raises on purpose."""


class ConfigError(OpenCellError):
    """A bot or config file is wrong. ``str()`` is ``file:line: field: message``."""

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self.located())

    def located(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        what = f"{self.field}: " if self.field else ""
        return f"{where}{what}{self.message}"


class ConfigErrors(ConfigError):
    """Several config errors found in one pass (``opencell validate`` prints each)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.located() for e in errors))

    def located(self) -> str:
        return "\n".join(e.located() for e in getattr(self, "errors", []))


class MissingSecretError(ConfigError):
    """A secret a configured bot needs is not set."""

    def __init__(self, variable: str, *, bot: str, purpose: str) -> None:
        self.variable = variable
        self.bot = bot
        super().__init__(
            f"bot '{bot}' needs {variable} ({purpose}); set it in the environment or in .env"
        )


class PlatformError(OpenCellError):
    """An adapter could not start or could not talk to its platform."""


class UnsupportedPlatformError(PlatformError):
    """A bot names a platform or feature this adapter does not offer."""


class MiddlewareError(OpenCellError):
    """The middleware chain was misused."""


class LLMError(OpenCellError):
    """A model call failed after the SDK's own retries."""

    retryable: bool = False

    def __init__(self, message: str, *, provider: str, status: int | None = None,
                 request_id: str | None = None) -> None:
        self.provider = provider
        self.status = status
        self.request_id = request_id
        super().__init__(f"{provider}: {message}")


class LLMAuthError(LLMError):
    """The provider rejected the API key."""


class LLMRateLimitError(LLMError):
    """The provider kept answering 429."""

    retryable = True


class LLMTimeoutError(LLMError):
    """The provider did not answer in time."""

    retryable = True


class LLMConnectionError(LLMError):
    """The provider's endpoint could not be reached."""

    retryable = True


class LLMResponseError(LLMError):
    """The provider answered with an error status or a body we could not read."""


class ToolError(OpenCellError):
    """A tool call failed. The message goes back to the model as the tool's result."""

    def __init__(self, message: str, *, tool: str) -> None:
        self.tool = tool
        super().__init__(message)


class ToolNotAllowedError(ToolError):
    """The tool is not allowed for this bot, user or target."""


class ToolArgumentsError(ToolError):
    """The model's arguments do not match the tool's schema."""


class ToolTimeoutError(ToolError):
    """The tool ran past its timeout."""


class ToolExecutionError(ToolError):
    """The tool raised an exception."""


class ToolUnavailableError(ToolExecutionError):
    """The tool's MCP server is down or the connection to it broke during the call."""


class ToolResultError(ToolError):
    """The tool ran and answered with an error of its own (an MCP result with ``isError``).

    Like a refusal it does not fail the turn: the model reads it and may correct itself.
    """


class StoreError(OpenCellError):
    """The observability store cannot be opened (bad URL, schema newer than this OpenCell)
    or was asked something it cannot answer (unknown sort, foreign cursor, ambiguous id)."""


class AmbiguousSessionError(StoreError):
    """A session id prefix matches more than one session; ask for a longer prefix."""


class BudgetExceededError(OpenCellError):
    """An enforced budget would be passed by a model call, so the call was not made.

    ``user_message`` is the polite text the user sees (``budgets.blocked_message`` or the
    bot's ``budget.blocked_message``); ``str()`` says which limit, for logs.
    """

    def __init__(self, message: str, *, user_message: str, scope: str, period: str,
                 limit_usd: float | None, spent_usd: float, reason: str) -> None:
        self.user_message = user_message
        self.scope = scope
        self.period = period
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.reason = reason
        """``over_budget`` or ``unpriced``."""
        super().__init__(message)
