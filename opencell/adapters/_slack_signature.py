"""The form of Slack's request-signing headers, checked before bolt verifies the signature.

bolt's verifier parses ``X-Slack-Request-Timestamp`` with ``int()``: an empty, fractional or
oversized value raises (a 500 that Slack retries), and ``+1700000000``, ``1_700_000_000`` or
non-ASCII digits parse, so one timestamp has several spellings. Only the form Slack sends is
let through — one header each, the timestamp as 1 to 12 ASCII digits, the signature as
``v0=`` and 64 lower-case hex digits, a UTF-8 body — and anything else is refused with the
same 401 bolt gives a wrong signature. The age window and the HMAC stay bolt's job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"
REFUSED_BODY = json.dumps({"error": "invalid request"})
"""bolt's own body for a request that fails verification."""

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


def malformed_signing(timestamps: Sequence[str], signatures: Sequence[str],
                      body: bytes) -> str | None:
    """Why this request cannot be a genuine Slack request (a short reason), or None.

    ``timestamps`` and ``signatures``: every value of each header, as received.
    """
    if len(timestamps) != 1:
        return f"{len(timestamps)} {TIMESTAMP_HEADER} headers"
    if len(signatures) != 1:
        return f"{len(signatures)} {SIGNATURE_HEADER} headers"
    if not _TIMESTAMP.fullmatch(timestamps[0]):
        return f"{TIMESTAMP_HEADER} is not whole seconds in ASCII digits"
    if not _SIGNATURE.fullmatch(signatures[0]):
        return f"{SIGNATURE_HEADER} is not v0= and 64 hex digits"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    return None
