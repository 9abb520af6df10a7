"""The shortcut for text with no secret shape in it never skips text a shape would match."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from opencell.observability.redact import _SHAPES, Redactor, _lower, _maybe_secret

FRAGMENTS = ["sk-", "sk-ant-", "xox", "xoxb-", "xapp-1-", "ghp_", "github_pat_", "AKIA", "ASIA",
             "AIza", "eyJ", ".", "-----BEGIN RSA PRIVATE KEY-----", "://", ":", "=", "@",
             "Bearer ", "BASIC ", "api_key", "token", "password", "aws_secret_access_key",
             "\"", "'", " ", "\t", "\n", "a1B2c3D4e5F6g7H8i9J0", "MTA5ODc2NTQzMjEwOTg3NjU0Mw",
             "GaBcDe", "x" * 40, "İ", "é", "apikey", "ApiKey", "access-key", "?key", "&sig",
             "?signature", "&auth", "clientSecret", "signingsecret", "passphrase", "PASSWD",
             "bot_token", "refreshToken", "K", "\u212aey", "=x", ": ", "sig", "auth",
             "passphrase=", "Passphrase: "]


def _folded(text: str) -> tuple[str, str]:
    return text, text.lower()


def _matches_any_shape(text: str) -> bool:
    lowered = _lower(text)
    for shape in _SHAPES:
        if shape.gate is not None and shape.gate.search(text) is None:
            continue
        if shape.pattern.search(lowered if shape.lowered else text):
            return True
    return False


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=6), max_size=14).map("".join))
def test_text_the_shortcut_skips_matches_no_shape(text: str) -> None:
    if not _maybe_secret(text, text.lower()):
        assert not _matches_any_shape(text), text


def test_plain_chat_takes_the_shortcut_and_secrets_do_not() -> None:
    assert not _maybe_secret(*_folded("Hello, this is message 123 of the benchmark; please "
                                      "answer."))
    # Colons and equals signs alone are prose (model answers are full of them).
    assert not _maybe_secret(*_folded("You said: “2+2=4”. Note: the answer is below."))
    redactor = Redactor()
    for secret in ("sk-ant-" + "a" * 40, "xoxb-1234567890-abcdefghij", "ghp_" + "b" * 36,
                   "AKIA" + "C" * 16, "Authorization: Bearer abcdef0123456789xyz",
                   "postgres://me:hunter22@db/x", "password=hunter22",
                   "MTA5ODc2NTQzMjEwOTg3NjU0Mw.GaBcDe." + "d" * 38):
        assert _maybe_secret(*_folded(f"look: {secret}")), secret
        assert _maybe_secret(*_folded(secret)), secret
        assert secret not in redactor.redact(f"here it is {secret} ok"), secret


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=6), max_size=14).map("".join))
def test_every_match_of_a_shape_holds_one_of_its_needles(text: str) -> None:
    lowered, folded = _lower(text), text.lower()
    for shape in _SHAPES:
        if shape.needles and shape.pattern.search(lowered if shape.lowered else text):
            hay = folded if shape.lowered else text
            assert any(needle in hay for needle in shape.needles), (shape.kind, text)
