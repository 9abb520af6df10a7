"""The log filter: no configured secret and no known token shape reaches a log line, from any
logger (ours or a third party's), through the message, its arguments, a traceback or a stack."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from opencell.observability.redact import (
    KNOWN_SECRET_VARIABLES,
    LOG_FILTER,
    Redactor,
    install_log_redaction,
)
from tests.observability import test_redact as shapes

TOKEN_SHAPES = {
    "anthropic": shapes.ANTHROPIC, "openai project": shapes.OPENAI_PROJECT,
    "openai legacy": shapes.OPENAI_LEGACY, "slack bot": shapes.SLACK_BOT,
    "slack app": shapes.SLACK_APP, "discord": shapes.DISCORD, "github": shapes.GITHUB_CLASSIC,
    "github fine-grained": shapes.GITHUB_FINE, "aws key id": shapes.AWS_KEY_ID,
    "google": shapes.GOOGLE, "jwt": shapes.JWT,
    "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
}
"""Every shape the redactor knows, written as it appears in the wild."""

SHAPE_CONTEXTS = {  # shapes that are only secret in context, with the secret part
    "bearer": ("Authorization: Bearer abcDEF123456789ghiJKL.x", "abcDEF123456789ghiJKL.x"),
    "aws secret": (f"aws_secret_access_key={shapes.AWS_SECRET}", shapes.AWS_SECRET),
    "url password": ("https://bob:hunter2-pass@db.example.com/x", "hunter2-pass"),
    "credential": ('{"client_secret": "plain words here"}', "plain words here"),
}

# Configured secrets with no recognisable shape: only the configuration names them.
CONFIGURED = {name: f"opaque-{name.lower()}-value-0042" for name in KNOWN_SECRET_VARIABLES}
CONFIGURED["MY_SERVICE_PASSWORD"] = "correct-horse-battery"
THIRD_PARTY = ["httpx", "httpcore.http11", "anthropic._base_client", "openai._base_client",
               "discord.gateway", "discord.http", "slack_sdk.web.async_base_client",
               "slack_bolt.AsyncApp", "opencell.middleware.errors"]


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A debug-level handler on the root logger, filtered the way the CLI does it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    install_log_redaction(Redactor.from_env(CONFIGURED), [handler])
    yield out
    root.removeHandler(handler)
    root.setLevel(level)
    LOG_FILTER.redactor = Redactor()


def every_secret() -> list[str]:
    return [*CONFIGURED.values(), *TOKEN_SHAPES.values(),
            *(secret for _, secret in SHAPE_CONTEXTS.values())]


def log_everything(logger: logging.Logger, secret: str, context: str) -> None:
    logger.debug("request headers=%s", {"x-api-key": secret, "context": context})
    logger.debug("payload %s", context)
    logger.debug(f"f-string {context}")
    logger.info("%(body)s", {"body": context})
    logger.warning("turn failed error=%s: %s", "AuthError", f"401 body: {context}")
    try:
        raise RuntimeError(f"upstream said {context}")
    except RuntimeError:
        logger.exception("call failed")
    logger.debug("where: %s", context, stack_info=True)


@pytest.mark.parametrize("name", THIRD_PARTY)
def test_no_secret_reaches_a_log_line_from_any_logger(stream: io.StringIO, name: str) -> None:
    logger = logging.getLogger(name)
    for secret in [*CONFIGURED.values(), *TOKEN_SHAPES.values()]:
        log_everything(logger, secret, f"token is {secret} ok")
    for context, _secret in SHAPE_CONTEXTS.values():
        log_everything(logger, context, context)
    written = stream.getvalue()
    assert "upstream said" in written and "Traceback" in written and "Stack (most recent" \
        in written
    leaked = [s for s in every_secret() if s in written]
    assert leaked == [], f"{name} leaked {leaked}"
    assert "[REDACTED:secret]" in written and "[REDACTED:jwt]" in written


def test_a_record_with_bad_arguments_is_still_logged(stream: io.StringIO) -> None:
    logging.getLogger("x").warning("two %s %s", f"only {shapes.JWT}")
    assert "two %s %s ('only [REDACTED:jwt]',)" in stream.getvalue()
    logging.getLogger("x").warning("after %s", shapes.JWT)
    assert "after [REDACTED:jwt]" in stream.getvalue()


def test_the_app_hands_the_filter_the_secrets_written_in_bot_yaml(stream: io.StringIO) -> None:
    from opencell.config import BotConfig, OpenCellConfig
    from opencell.observability.observer import Observability

    bot = BotConfig.model_validate({"name": "b", "llm": {"provider": "offline",
                                                          "api_key": "yaml-only-key-123456"}})
    obs = Observability.from_config(OpenCellConfig(), [bot], env={})
    try:
        logging.getLogger("discord.http").debug("sending key=%s", "yaml-only-key-123456")
    finally:
        obs.close(timeout=2.0)
    assert "yaml-only-key-123456" not in stream.getvalue()
    assert "sending key=[REDACTED" in stream.getvalue()
