"""An MCP ``CallToolResult`` as what the model reads and what is recorded about it.

Text blocks are joined; every other block (image, audio, embedded resource, resource link)
becomes a short bracketed note in the text — its type, MIME type and size — and is summarised
in ``parts``. Images up to ``MAX_IMAGE_BYTES`` also travel as attachments, which providers
that can show images to the model send with the result. The text is capped at
``max_result_chars`` with a note saying how much was cut.
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types

from opencell.llm.base import Attachment
from opencell.tools.policy import ToolOutput

MAX_IMAGE_BYTES = 5_000_000
"""The largest image passed to the model (the providers' common per-image limit)."""
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def b64_size(data: str) -> int:
    """Bytes encoded by a base64 string (without decoding it)."""
    return max(0, len(data) * 3 // 4 - data[-2:].count("="))


def to_output(result: types.CallToolResult, *, max_chars: int) -> ToolOutput:
    """What the model reads of ``result`` and what is recorded about its parts."""
    texts: list[str] = []
    attachments: list[Attachment] = []
    parts: list[dict[str, Any]] = []
    only_text = True
    for block in result.content:
        if isinstance(block, types.TextContent):
            texts.append(block.text)
            parts.append({"type": "text", "chars": len(block.text)})
            continue
        only_text = False
        note, part = _describe(block)
        if isinstance(block, types.ImageContent) and part.get("passed"):
            attachments.append(Attachment(kind="image", mime_type=block.mime_type,
                                          data=block.data))
        texts.append(note)
        parts.append(part)
    if not result.content and result.structured_content is not None:
        texts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
        parts.append({"type": "structured", "chars": len(texts[-1])})
    text = "\n".join(texts)
    if len(text) > max_chars:
        text = (f"{text[:max_chars]}\n[truncated: the result is {len(text)} characters; "
                f"the bot reads the first {max_chars} (max_result_chars)]")
    return ToolOutput(text=text, attachments=tuple(attachments),
                      parts=() if only_text else tuple(parts))


def _describe(block: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(block, types.ImageContent):
        size = b64_size(block.data)
        passed = block.mime_type in IMAGE_TYPES and size <= MAX_IMAGE_BYTES
        how = "attached" if passed else "not passed to the model"
        return (f"[image {block.mime_type}, {size} bytes, {how}]",
                {"type": "image", "mime_type": block.mime_type, "bytes": size,
                 "passed": passed})
    if isinstance(block, types.AudioContent):
        size = b64_size(block.data)
        return (f"[audio {block.mime_type}, {size} bytes, not passed to the model]",
                {"type": "audio", "mime_type": block.mime_type, "bytes": size})
    if isinstance(block, types.EmbeddedResource):
        res = block.resource
        mime = res.mime_type or "unknown type"
        if isinstance(res, types.TextResourceContents):
            return (f"[resource {res.uri} ({mime})]\n{res.text}",
                    {"type": "resource", "uri": str(res.uri), "mime_type": res.mime_type,
                     "chars": len(res.text)})
        size = b64_size(res.blob)
        return (f"[resource {res.uri} ({mime}), {size} bytes, not passed to the model]",
                {"type": "resource", "uri": str(res.uri), "mime_type": res.mime_type,
                 "bytes": size})
    if isinstance(block, types.ResourceLink):
        return (f"[resource link {block.name}: {block.uri}]",
                {"type": "resource_link", "uri": str(block.uri)})
    kind = str(getattr(block, "type", type(block).__name__))
    return f"[{kind} content, not passed to the model]", {"type": kind}
