"""Tests for opencell.observability.redact: secret values, token shapes, user rules."""

from __future__ import annotations

import pytest

from opencell.config import RedactRule
from opencell.observability.redact import Redactor

# Fake credentials with the real shapes (built from pieces so no scanner flags this file).
ANTHROPIC = "sk-ant-" + "api03-" + "Xy9_" * 20 + "AA"
OPENAI_PROJECT = "sk-" + "proj-" + "Ab3-" * 30
OPENAI_LEGACY = "sk-" + "A1b2C3d4" * 6
SLACK_BOT = "xoxb-" + "2220000000001-2220000000002-" + "AbCdEfGhIjKlMnOpQrStUvWx"
SLACK_APP = "xapp-" + "1-A0123456789-1234567890123-" + "abcdef0123456789"
DISCORD = "MTA5ODc2NTQzMjEwOTg3NjU0Mw" + ".GaBcDe." + "abcdefghijklmnopqrstuvwxyz0123456789"
GITHUB_CLASSIC = "ghp_" + "a1B2" * 9
GITHUB_FINE = "github_pat_" + "11ABCDEFG0123456789_" + "abcdefghijklmnopqrstuvwxyz0123"
AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
GOOGLE = "AIza" + "SyA-1234567890abcdefghijklmnopqrstu"
JWT = "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0." + "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P"


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize(("secret", "kind"), [
    (ANTHROPIC, "anthropic_key"),
    (OPENAI_PROJECT, "openai_key"),
    (OPENAI_LEGACY, "openai_key"),
    (SLACK_BOT, "slack_token"),
    (SLACK_APP, "slack_token"),
    (DISCORD, "discord_token"),
    (GITHUB_CLASSIC, "github_token"),
    (GITHUB_FINE, "github_token"),
    (AWS_KEY_ID, "aws_access_key"),
    (GOOGLE, "google_api_key"),
    (JWT, "jwt"),
])
def test_token_shapes_are_redacted(redactor: Redactor, secret: str, kind: str) -> None:
    text = f"here it is: {secret}, use it wisely"
    assert redactor.redact(text) == f"here it is: [REDACTED:{kind}], use it wisely"
    assert redactor.redact(secret) == f"[REDACTED:{kind}]"


@pytest.mark.parametrize(("text", "expected"), [
    ("Authorization: Bearer abcDEF123456789ghiJKL.x",
     "Authorization: Bearer [REDACTED:bearer]"),
    ("curl -H 'authorization: basic dXNlcjpwYXNzd29yZDEyMw=='",
     "curl -H 'authorization: basic [REDACTED:bearer]'"),
    (f"aws_secret_access_key = {AWS_SECRET}", "aws_secret_access_key = [REDACTED:aws_secret_key]"),
    ("https://api.example.com/v1?api_key=abc123XYZ&user=bob",
     "https://api.example.com/v1?api_key=[REDACTED:credential]&user=bob"),
    ("GET /hook?token=s3cr3tvalue&page=2", "GET /hook?token=[REDACTED:credential]&page=2"),
    ('{"api_key": "abc123", "model": "gpt-4o"}',
     '{"api_key": "[REDACTED:credential]", "model": "gpt-4o"}'),
    ('{"password": "correct horse battery staple"}', '{"password": "[REDACTED:credential]"}'),
    ("password=hunter22 and user=bob", "password=[REDACTED:credential] and user=bob"),
    ("SLACK_SIGNING_SECRET=8f14e45fceea167a", "SLACK_SIGNING_SECRET=[REDACTED:credential]"),
    ("x-api-key: abcdef123", "x-api-key: [REDACTED:credential]"),
    ("{'clientSecret': 'abc def'}", "{'clientSecret': '[REDACTED:credential]'}"),
    ("postgresql://opencell:Pa55word@db.internal:5432/opencell",
     "postgresql://opencell:[REDACTED:url_password]@db.internal:5432/opencell"),
    ("key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAKC\n-----END RSA PRIVATE KEY-----\nok",
     "key:\n[REDACTED:private_key]\nok"),
    ("cut off: -----BEGIN PRIVATE KEY-----\nMIIEow", "cut off: [REDACTED:private_key]"),
])
def test_credentials_in_context_keep_their_key(redactor: Redactor, text: str,
                                               expected: str) -> None:
    assert redactor.redact(text) == expected


def test_most_specific_kind_wins(redactor: Redactor) -> None:
    assert redactor.redact(f"ANTHROPIC_API_KEY={ANTHROPIC}") == (
        "ANTHROPIC_API_KEY=[REDACTED:anthropic_key]")
    assert redactor.redact(f"Authorization: Bearer {JWT}") == "Authorization: Bearer [REDACTED:jwt]"


def test_configured_secret_inside_longer_text_and_nested_tool_args() -> None:
    secret = "hunter2-but-longer"
    redactor = Redactor([secret])
    assert redactor.redact(f"pw{secret}!") == "pw[REDACTED:secret]!"
    args = {"query": f"login with {secret}", "limit": 5, "ratio": 0.5, "flag": True,
            "nested": [{"deep": (f"x{secret}", 7)}], "none": None}
    assert redactor.redact_value(args) == {
        "query": "login with [REDACTED:secret]", "limit": 5, "ratio": 0.5, "flag": True,
        "nested": [{"deep": ("x[REDACTED:secret]", 7)}], "none": None}
    assert args["query"] == f"login with {secret}"  # the input is not modified


def test_longest_secret_first_and_short_secrets_ignored() -> None:
    redactor = Redactor(["abcdefgh", "abcdefgh-ijkl", "short", ""])
    assert redactor.redact("abcdefgh-ijkl abcdefgh short") == (
        "[REDACTED:secret] [REDACTED:secret] short")


def test_secret_values_of_credential_keys_are_redacted_whole(redactor: Redactor) -> None:
    # "hunter2" has no secret shape; its key says what it is.
    value = {"username": "bob", "password": "hunter2", "Authorization": "token abc",
             "slack_bot_token": "x", "max_tokens": 1024, "token": 42, "tokens": "many"}
    assert redactor.redact_value(value) == {
        "username": "bob", "password": "[REDACTED:credential]",
        "Authorization": "[REDACTED:credential]", "slack_bot_token": "[REDACTED:credential]",
        "max_tokens": 1024, "token": 42, "tokens": "many"}


def test_from_env_collects_known_and_suffixed_variables() -> None:
    env = {
        "ANTHROPIC_API_KEY": "anthropic-value-1", "DISCORD_TOKEN": "discord-value-2",
        "MY_SERVICE_PASSWORD": "service-pass-3", "CUSTOM_SECRET": "custom-value-4",
        "WEIRD_NAME": "weird-value-5", "HOME": "/home/somebody", "SHORT_TOKEN": "abc",
    }
    redactor = Redactor.from_env(env, extra_secret_names=["WEIRD_NAME"],
                                 secrets=["from-bot-yaml-6"])
    text = " ".join(env.values()) + " from-bot-yaml-6"
    assert redactor.redact(text) == (
        "[REDACTED:secret] [REDACTED:secret] [REDACTED:secret] [REDACTED:secret] "
        "[REDACTED:secret] /home/somebody abc [REDACTED:secret]")


def test_user_rules_run_with_their_own_replacement() -> None:
    rules = [RedactRule(pattern=r"(order )#\d+", replacement=r"\1#[ORDER]"),
             RedactRule(pattern=r"\binternal-[a-z]+\b")]
    redactor = Redactor(rules=rules)
    assert redactor.redact("order #48213 on internal-billing") == (
        "order #[ORDER] on [REDACTED]")
    assert redactor.redact("ok") == "ok"  # rules run on short text too
    with pytest.raises(ValueError, match="bad replacement"):
        Redactor(rules=[RedactRule(pattern=r"x", replacement=r"\2")])


@pytest.mark.parametrize("text", [
    "",
    "ok",
    "Hi! Could you help me reset my account? I tried logging in this morning, thanks.",
    "The bearer of bad news explained bearer authentication in a task-force meeting.",
    "Start with basic building-blocks-for-everyone, then bearer well-known_practices.",
    "We use sk-learn-is-great and risk-management-frameworks-for-everyone daily.",
    "Request id 123e4567-e89b-12d3-a456-426614174000 at https://example.com/a/b?q=1&page=2",
    "The key: monkey: 3, max_tokens: 1024, input_tokens=5, tokens: many, keyboard=us",
    "Visit https://docs.python.org:443/3/library/re.html or mailto:someone@example.com",
    "MANIFEST.in and Makefile.am and README.md are files; Mr. Smith. Mrs. Jones.",
    "Asia-Pacific AKIAshort AIza ghp_short sk-short xoxb- eyJ",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "İstanbul ΑΘΗΝΑ 東京 emoji 🎉 — fine",
])
def test_text_without_secrets_is_returned_unchanged(text: str) -> None:
    redactor = Redactor(["a-configured-secret"], [RedactRule(pattern=r"never-matches-\d{9}")])
    assert redactor.redact(text) is text


def test_redaction_is_idempotent() -> None:
    redactor = Redactor(["pg-Pa55word-long"])
    once = redactor.redact(
        f'api_key="{ANTHROPIC}" postgresql://u:pg-Pa55word-long@h/db password: "x y" {DISCORD}')
    assert redactor.redact(once) == once
    assert "[REDACTED:anthropic_key]" in once and "[REDACTED:secret]" in once


def test_positions_survive_case_folding_that_changes_length(redactor: Redactor) -> None:
    # "İ".lower() is two characters; the lower-cased shapes must still hit the right span.
    assert redactor.redact("İİİ password=hunter22 İ") == "İİİ password=[REDACTED:credential] İ"


def test_every_occurrence_is_redacted(redactor: Redactor) -> None:
    text = f"{SLACK_BOT} then {SLACK_APP} then {SLACK_BOT}"
    assert redactor.redact(text) == (
        "[REDACTED:slack_token] then [REDACTED:slack_token] then [REDACTED:slack_token]")
