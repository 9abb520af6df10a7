"""Removes secrets from text and tool arguments before they are stored or exported.

A ``Redactor`` replaces:

- the exact values of configured secrets (API keys and tokens from the environment or bot
  YAML; values shorter than 8 characters are ignored so that they cannot shred ordinary text);
- well-known token shapes: Anthropic ``sk-ant-…``, OpenAI ``sk-…``/``sk-proj-…``, Slack
  ``xox?-…``/``xapp-…``, Discord bot tokens, GitHub ``ghp_…``/``github_pat_…``, AWS access key
  ids and ``aws_secret_access_key=…``, Google ``AIza…`` keys, JWTs, PEM private keys,
  ``Bearer``/``Basic`` credentials and passwords in URLs (``scheme://user:pw@host``);
- values of credential-named keys: ``api_key=…``, ``"password": "…"``, ``SLACK_BOT_TOKEN=…``,
  ``clientSecret: …``, ``?token=…``/``&key=…`` in query strings.

Each match becomes ``[REDACTED:<kind>]`` (``[REDACTED:anthropic_key]``); the key, quote or
``Bearer`` in front of a value is kept. User rules (``observability.redact`` in
``config/opencell.yaml``) run last, with their own replacement (``\\1`` group references
allowed). Text with nothing to redact is returned as the same object.

Every pattern runs in time linear in the text, however hostile: each unbounded run either
ends the match, is possessive, or starts at an anchor (a look-behind saying the previous
character cannot belong to it), so no run is rescanned from many starting points.
``tests/observability/test_redact_linear_time.py`` counts the matcher's steps on generated
worst cases; benchmarks/redact.py compares 160 KB of hostile text with 160 KB of prose.

Speed (benchmarks/redact.py): about 3 µs for a 200-character chat message. Each shape is its
own pattern starting with a literal (``sk-``, ``xox``, ``AKIA`` …), which the regex matcher finds
with a fast substring scan; case-insensitive shapes are matched on the lower-cased text, and
the two shapes without a literal start are gated by a cheaper pattern. One combined alternation
of the same shapes measured 2x slower on a chat message and 3.6x slower on a 4,000-character
tool result: the matcher then tries every branch at every position.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # opencell.config costs 0.4 s to import; the CLI sets up logging first
    from opencell.config import RedactRule

KNOWN_SECRET_VARIABLES = (
    "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "MOONSHOT_API_KEY", "DISCORD_TOKEN",
    "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "AGENTOPS_API_KEY",
    "OPENCELL_DASHBOARD_TOKEN",
)
"""Environment variables whose values are always redacted (see ``Redactor.from_env``)."""

SECRET_NAME_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
"""Any other environment variable whose name ends so is treated as a secret too."""

MIN_SECRET_LENGTH = 8
"""Shorter configured secrets are ignored, and shorter text has no built-in shape in it."""


@dataclass(frozen=True, slots=True)
class _Shape:
    """One kind of secret. The last group that took part in a match (or the whole match if the
    pattern has no group) is replaced; the rest of the match is kept."""

    kind: str
    pattern: re.Pattern[str]
    lowered: bool = False
    """Matched against the lower-cased text (the pattern is written in lower case)."""
    gate: re.Pattern[str] | None = None
    """A cheaper pattern that must match first (for patterns without a literal start)."""
    needles: tuple[str, ...] = ()
    """Substrings of which every match holds one (of the lower-cased text when ``lowered``):
    with none present the pattern is not run (an ``in`` test costs a tenth of a search)."""


def _shape(kind: str, pattern: str, *needles: str, lowered: bool = False,
           gate: str | None = None) -> _Shape:
    return _Shape(kind, re.compile(pattern), lowered, re.compile(gate) if gate else None,
                  needles)


_TOKEN = r"[A-Za-z0-9_-]"
# A credential value after `key=`, `key: `, `"key": "`; quoted values may hold spaces.
# Runs of blanks are possessive (`*+`): nothing after them can start with a blank, and giving
# blanks back one by one made `api_key` + 40,000 tabs cost 10x plain text.
_VALUE = (r"[\"']?\s*+[:=][ \t]*+(?:\"((?!\[redacted)(?:[^\"\\\n]|\\.)+)"
          r"|'((?!\[redacted)[^'\n]+)|([^\s\"'&,;<>()\[\]{}]+))")
# Credential names, each written as its last word followed by a look-behind for the rest, so
# that every alternative starts with a literal (fast) and `monkey: 3`/`tokens: 5` stay prose.
_CREDENTIAL_NAME = (
    r"(?:key(?:(?<=api[_-]key)|(?<=apikey)|(?<=access[_-]key)|(?<=accesskey)"
    r"|(?<=secret[_-]key)|(?<=secretkey)|(?<=private[_-]key)|(?<=privatekey)|(?<=[?&]key))"
    r"|token(?:(?<=[a-z0-9][_-]token)|(?<=accesstoken)|(?<=refreshtoken)|(?<=authtoken)"
    r"|(?<=sessiontoken)|(?<=bottoken)|(?<=apptoken)|(?<=[?&]token))"
    r"|secret(?:(?<=[a-z0-9][_-]secret)|(?<=clientsecret)|(?<=signingsecret))"
    r"|passw(?:or)?d|passphrase|signature(?<=[?&]signature)|sig(?<=[?&]sig)|auth(?<=[?&]auth))"
)

_CREDENTIAL_WORDS = ("key", "token", "secret", "passw", "passphrase", "sig", "auth")
"""Every credential name above holds one of these."""

# Order matters: specific shapes first, so that `api_key=sk-ant-…` says anthropic_key.
_SHAPES: tuple[_Shape, ...] = (
    # A cut-off key is redacted to the end.
    _shape("private_key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z ]*"
                          r"PRIVATE KEY-----|[\s\S]*)", "-----BEGIN "),
    _shape("anthropic_key", r"sk-ant-[A-Za-z0-9_-]{32,}", "sk-ant-"),
    _shape("openai_key", r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{32,}|sk-[A-Za-z0-9]{32,}",
           "sk-"),
    _shape("slack_token", r"xox[abposre]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{10,}",
           "xox", "xapp-"),
    _shape("github_token", r"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}",
           "gh", "github_pat_"),
    _shape("aws_access_key", r"A[KS]IA[0-9A-Z]{16}(?![0-9A-Za-z])", "AKIA", "ASIA"),
    _shape("google_api_key", rf"AIza{_TOKEN}{{35}}", "AIza"),
    # Anchored by the look-behind: a JWT or Discord token starts where a run of token
    # characters starts, so each run is scanned from one place, not again from every `eyJ`
    # or `M` inside it (quadratic: 160 KB of `eyJeyJ…` took 10.8 s).
    _shape("jwt", rf"eyJ(?<!{_TOKEN}eyJ){_TOKEN}{{8,}}\.eyJ{_TOKEN}{{8,}}\.{_TOKEN}{{8,}}",
           "eyJ"),
    _shape("discord_token",
           rf"[MNO](?<!{_TOKEN}[MNO]){_TOKEN}{{23,27}}\.{_TOKEN}{{6}}\.{_TOKEN}{{27,40}}",
           gate=rf"\.{_TOKEN}{{6}}\."),
    # Bearer/Basic + 16 or more token characters with a digit, + / or = among them (so that
    # "bearer authentication" and "basic building-blocks" stay prose).
    _shape("bearer", r"(?:bearer|basic)\s++((?=[a-z0-9._~+/=-]*[0-9+/=])[a-z0-9._~+/=-]{16,})",
           "bearer", "basic", lowered=True),
    _shape("url_password", r"://[^/\s:@\"'<>]+:((?!\[REDACTED)[^/\s@\"'<>]+)@", "://"),
    _shape("aws_secret_key", r"aws_secret_access_key[\"']?\s*+[:=]\s*+[\"']?([a-z0-9/+=]{40})",
           "aws_secret_access_key", lowered=True),
    _shape("credential", _CREDENTIAL_NAME + _VALUE, *_CREDENTIAL_WORDS, lowered=True,
           gate="[:=]"),
)

_DISCORD_GATE = re.compile(rf"\.{_TOKEN}{{6}}\.")
"""The discord_token shape's gate."""


def _maybe_secret(text: str, folded: str) -> bool:
    """False only when no shape above can match: every match contains one of these literals
    (or the Discord gate). Most chat text has none, and plain ``in`` tests (C speed, no
    generator) cost far less than running each shape — or one alternation — over it.

    A ``:`` or ``=`` alone (model answers are full of them) is not enough: the shapes that need
    one also need a credential word (``key``, ``token``, ``secret``, ``passw``, ``passphrase``,
    ``sig``, ``auth``; ``aws_secret_access_key`` has ``secret``) or ``://`` (passwords in URLs).
    ``folded`` is ``text.lower()``.
    """
    if ("sk-" in text or "xox" in text or "xapp-" in text or ("gh" in text and "_" in text)
            or "github_pat_" in text or "AKIA" in text or "ASIA" in text or "AIza" in text
            or "eyJ" in text or "-----BEGIN " in text or "://" in text):
        return True
    if "bearer" in folded or "basic" in folded:
        return True
    if ("=" in text or ":" in text) and (
            "key" in folded or "token" in folded or "secret" in folded or "passw" in folded
            or "passphrase" in folded or "sig" in folded or "auth" in folded):
        # _CREDENTIAL_WORDS, spelt out for speed
        return True
    return _DISCORD_GATE.search(text) is not None


_CREDENTIAL_KEY = re.compile(
    r"(?:api[_-]?key|access[_-]?key|secret[_-]?key|private[_-]?key|token|secret"
    r"|passw(?:or)?d|passphrase|authorization|cookie)$")
"""Dict keys (lower-cased) whose string value is a credential, e.g. ``password``,
``slack_bot_token``, ``Authorization``; in a dict even a bare ``token`` is one."""


class Redactor:
    """Replaces secrets in text (``redact``) and in nested values (``redact_value``).

    ``secrets`` are exact values removed wherever they occur (longest first; values shorter
    than 8 characters are ignored); ``rules`` are extra patterns with their own replacement.
    Thread-safe, a few µs per chat message, and never raises on any string.
    """

    def __init__(self, secrets: Iterable[str] = (), rules: Iterable[RedactRule] = ()) -> None:
        self._secrets = tuple(sorted(
            {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH},
            key=lambda s: (-len(s), s)))
        self._rules: list[tuple[re.Pattern[str], str]] = []
        for rule in rules:
            compiled = re.compile(rule.pattern)
            try:
                compiled.sub(rule.replacement, "")  # checks group references now, not per call
            except (re.error, IndexError) as exc:
                raise ValueError(f"redact rule {rule.pattern!r}: bad replacement "
                                 f"{rule.replacement!r}: {exc}") from None
            self._rules.append((compiled, rule.replacement))
        self.json_safe = not self._rules and all(
            json.dumps(secret, ensure_ascii=False)[1:-1] == secret for secret in self._secrets)
        """Whether redacting a value's JSON text finds what redacting the value finds: no
        custom rules (they may be anchored to a whole value) and no secret that JSON escapes.
        The export uses it to redact stored JSON without decoding it."""

    @classmethod
    def from_env(cls, env: Mapping[str, str], extra_secret_names: Iterable[str] = (), *,
                 secrets: Iterable[str] = (), rules: Iterable[RedactRule] = ()) -> Redactor:
        """A redactor for the secrets in ``env``: the variables in ``KNOWN_SECRET_VARIABLES``,
        every variable whose name ends in ``_KEY``, ``_TOKEN``, ``_SECRET`` or ``_PASSWORD``,
        and ``extra_secret_names``; plus ``secrets`` (e.g. tokens written into bot YAML)."""
        names = {*KNOWN_SECRET_VARIABLES, *extra_secret_names}
        found = [value for name, value in env.items()
                 if name in names or name.upper().endswith(SECRET_NAME_SUFFIXES)]
        return cls([*found, *secrets], rules)

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced; the same object if there was none."""
        if len(text) >= MIN_SECRET_LENGTH:
            for secret in self._secrets:
                if secret in text:
                    text = text.replace(secret, "[REDACTED:secret]")
            # Lower-cased once, for the needles and, when that kept every position, for the
            # patterns (``_lower``): 1.2-1.7 µs each time for 300 characters not all ASCII.
            folded = text.lower()
            if not _maybe_secret(text, folded):
                return self._apply_rules(text)
            lowered: str | None = None
            for shape in _SHAPES:
                if shape.needles:
                    hay = folded if shape.lowered else text
                    for needle in shape.needles:
                        if needle in hay:
                            break
                    else:
                        continue
                if shape.gate is not None and shape.gate.search(text) is None:
                    continue
                if shape.lowered:
                    if lowered is None:
                        lowered = _lower(text, folded)
                    match = shape.pattern.search(lowered)
                else:
                    match = shape.pattern.search(text)
                if match is not None:
                    text = _replace(text, shape, match)
                    lowered, folded = None, text.lower()
        return self._apply_rules(text)

    def _apply_rules(self, text: str) -> str:
        for pattern, replacement in self._rules:
            if pattern.search(text):
                text = pattern.sub(replacement, text)
        return text

    def redact_value(self, value: Any) -> Any:
        """Redact the strings inside dicts, lists and tuples, returning copies. Keys are kept;
        numbers and other objects are returned as they are; a string under a credential-named
        key (``password``, ``api_key``, ``token``, ``Authorization`` …) is replaced whole."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {key: self._redact_item(key, item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.redact_value(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.redact_value(item) for item in value)
        return value

    def _redact_item(self, key: object, item: Any) -> Any:
        if (isinstance(item, str) and item and isinstance(key, str)
                and _CREDENTIAL_KEY.search(key.lower()) and not item.startswith("[REDACTED")):
            return "[REDACTED:credential]"
        return self.redact_value(item)


def _lower(text: str, lowered: str | None = None) -> str:
    """``text.lower()`` with the same length, so that match positions map back to ``text``
    (``lowered``: ``text.lower()`` when the caller has it already)."""
    if lowered is None:
        lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)  # e.g. 'İ' → 2 chars


def _replace(text: str, shape: _Shape, first: re.Match[str]) -> str:
    """Replace the value of ``first`` and every later match of ``shape`` in ``text``."""
    marker = f"[REDACTED:{shape.kind}]"
    pieces: list[str] = []
    kept_until = 0
    match: re.Match[str] | None = first
    while match is not None:
        group = match.lastindex or 0
        start, end = match.span(group)
        pieces += (text[kept_until:start], marker)
        kept_until = end
        match = shape.pattern.search(match.string, max(match.end(), match.start() + 1))
    pieces.append(text[kept_until:])
    return "".join(pieces)


class RedactingLogFilter(logging.Filter):
    """Redacts each log record's message, exception text and stack text, in place.

    It belongs on *handlers*: a handler's filters see every record the handler writes, from
    any logger (httpx, anthropic, discord.py, slack-sdk …), while a logger's filters see only
    records logged on that very logger, not those propagated from its children. The record is
    rewritten (``msg`` becomes the formatted, redacted message; ``args`` is emptied;
    ``exc_text`` holds the redacted traceback), so every later handler gets the safe text.
    Never raises and never drops a record.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        with contextlib.suppress(Exception):  # logging must go on, even with odd arguments
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - arguments that do not fit: keep them, redacted
                message = f"{record.msg} {record.args!r}"
            record.msg, record.args = self.redactor.redact(message), None
            if record.exc_info and not record.exc_text:
                record.exc_text = _EXCEPTIONS.formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self.redactor.redact(record.exc_text)
            if record.stack_info:
                record.stack_info = self.redactor.redact(record.stack_info)
        return True


_EXCEPTIONS = logging.Formatter()
LOG_FILTER = RedactingLogFilter()
"""The one filter OpenCell puts on the handlers it configures (see ``install_log_redaction``)."""


def install_log_redaction(redactor: Redactor,
                          handlers: Iterable[logging.Handler] | None = None) -> None:
    """Put ``LOG_FILTER`` on ``handlers`` (default: the root logger's) and make it use
    ``redactor``. Idempotent; the CLI calls it right after configuring logging."""
    LOG_FILTER.redactor = redactor
    for handler in logging.getLogger().handlers if handlers is None else handlers:
        if LOG_FILTER not in handler.filters:
            handler.addFilter(LOG_FILTER)


def use_for_logs(redactor: Redactor) -> None:
    """Make the log filter use ``redactor`` (one that knows the bots' own secrets too), without
    installing it anywhere: handlers are the host application's unless the CLI made them."""
    LOG_FILTER.redactor = redactor


__all__ = ["Redactor", "KNOWN_SECRET_VARIABLES", "SECRET_NAME_SUFFIXES", "MIN_SECRET_LENGTH",
           "RedactingLogFilter", "LOG_FILTER", "install_log_redaction", "use_for_logs"]
