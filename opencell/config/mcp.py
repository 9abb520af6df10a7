"""The ``mcp:`` key of a bot's tool entry: how to reach one Model Context Protocol server.

Two transports: ``command`` (+ ``args``, ``env``, ``cwd``) starts a local process and talks
over its stdin/stdout; ``url`` (+ ``headers``) talks streamable HTTP. ``${VAR}`` in any of the
strings is expanded by the YAML loader, so tokens stay in the environment.
"""

from __future__ import annotations

import re
from pathlib import PurePath

from pydantic import Field, field_validator, model_validator

from opencell.config.fields import Duration, Model

SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|AUTH|CREDENTIAL|COOKIE|SESSION",
                          re.IGNORECASE)


class McpServerConfig(Model):
    """One MCP server a bot's tools come from."""

    command: str | None = None
    """stdio: the program to start, e.g. ``python`` or ``npx``."""
    args: list[str] = []
    env: dict[str, str] = {}
    """Extra environment for the process (on top of PATH, HOME, USER, …; not the whole env).
    Values whose names look secret (``ACME_TOKEN``, ``API_KEY``, …) are redacted in records."""
    cwd: str | None = None
    url: str | None = None
    """Streamable HTTP: the server's endpoint, e.g. ``https://mcp.example.com/mcp``."""
    headers: dict[str, str] = {}
    connect_timeout: Duration = 10.0
    """How long connecting (start-up, handshake, listing the tools) may take."""
    max_restart_delay: Duration = Field(30.0, le=3600.0)
    """The longest wait between two reconnection attempts (the back-off doubles up to it)."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value.strip()):
            raise ValueError(f"'{value}' is not an http:// or https:// URL")
        return None if value is None else value.strip()

    @field_validator("command")
    @classmethod
    def _command(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("command is empty; name the program that starts the server")
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("an mcp server needs exactly one of: command (a local process "
                             "over stdio) or url (streamable HTTP)")
        if self.command is None and (self.args or self.env or self.cwd):
            raise ValueError("args, env and cwd go with command, not with url")
        if self.url is None and self.headers:
            raise ValueError("headers go with url, not with command")
        return self

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"

    def default_name(self) -> str:
        """A name for the server when its entry gives none: the module, script or host."""
        if self.url is not None:
            host = re.sub(r"^https?://", "", self.url).split("/")[0].split("@")[-1]
            return _tidy(host.split(":")[0])
        words = [a for a in self.args if not a.startswith("-")]
        if "-m" in self.args and self.args.index("-m") + 1 < len(self.args):
            return _tidy(self.args[self.args.index("-m") + 1].split(".")[-1])
        return _tidy(PurePath(words[0] if words else self.command or "mcp").stem)

    def secrets(self) -> list[str]:
        """Values that must never reach the store or an exporter: every header value (and
        the credential after ``Bearer``/``Basic``), and the ``env`` values whose names say
        they are secret (``…TOKEN``, ``…KEY``, ``…SECRET``, ``…PASSWORD``, ``…AUTH…``)."""
        values = [v for k, v in self.env.items() if _SECRET_NAME.search(k)]
        for value in self.headers.values():
            values.append(value)
            scheme, _, credential = value.strip().partition(" ")
            if credential and scheme.isalpha():
                values.append(credential.strip())
        return [v for v in values if v]


def _tidy(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", text).strip("-.") or "mcp"
    return name[:64]
