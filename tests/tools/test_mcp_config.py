"""MCP tool entries: the YAML's checks, name clashes at start-up, ``opencell doctor``'s view,
and how a result with non-text parts becomes what the model reads."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import mcp_types as types
import pytest

from opencell.cli.checks import check_bot
from opencell.config import BotConfig
from opencell.errors import ConfigError, ConfigErrors
from opencell.llm.anthropic import to_anthropic_messages
from opencell.llm.base import Attachment, ChatMessage
from opencell.loading import load_bot
from opencell.observability.observer import Observability, bot_secrets
from opencell.runtime import BotRuntime
from opencell.tools.mcp.results import b64_size, to_output
from tests.conftest import REPO
from tests.fakes.function_llm import FunctionLLM
from tests.fakes.mcp_server import McpHttpServer

STDIO = (f"{{command: {json.dumps(sys.executable)}, args: [-m, tests.fakes.mcp_server], "
         f"cwd: {json.dumps(str(REPO))}}}")


def write_bot(tmp_path: Path, tools: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(f"name: agent\ntype: agent\nllm: {{provider: offline}}\ntools:\n{tools}")
    return path


def problems(tmp_path: Path, tools: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_bot(write_bot(tmp_path, tools), {})
    return str(caught.value)


@pytest.mark.parametrize(("tools", "expected"), [
    ("  - mcp: {command: x, url: 'http://h/mcp'}\n    allow: [a]\n", "exactly one of"),
    ("  - mcp: {}\n    allow: [a]\n", "exactly one of"),
    ("  - mcp: {url: 'ftp://h'}\n    allow: [a]\n", "not an http:// or https:// URL"),
    ("  - mcp: {url: 'http://h/mcp', env: {A: b}}\n    allow: [a]\n", "go with command"),
    ("  - mcp: {command: x, headers: {A: b}}\n    allow: [a]\n", "go with url"),
    ("  - mcp: {command: x}\n", "allow"),
    ("  - mcp: {command: x}\n    allow: []\n", "allow"),
    ("  - mcp: {command: x}\n    allow: ['*', echo]\n", "not both"),
    ("  - mcp: {command: x}\n    allow: ['bad name']\n", "not a tool name"),
    ("  - mcp: {command: x}\n    allow: [a]\n    alow: [b]\n", "unknown option 'alow'"),
    ("  - mcp: {command: x}\n    python: a.b:c\n    allow: [a]\n", "not both"),
    ("  - mcp: {command: x, args: [srv.py]}\n    allow: [a]\n"
     "  - mcp: {command: y, args: [srv.py]}\n    allow: [b]\n", "tool listed twice: srv"),
    ("  - calculator\n  - mcp: {command: x}\n    allow: [calculator]\n",
     "tool 'calculator' of MCP server 'x' clashes with tool 'calculator'"),
    ("  - mcp: {command: x}\n    allow: [a]\n  - mcp: {command: y}\n    allow: [b, a]\n",
     "tool 'a' of MCP server 'y' clashes with tool 'a' of MCP server 'x'"),
])
def test_a_wrong_mcp_entry_is_a_located_config_error(tmp_path: Path, tools: str,
                                                      expected: str) -> None:
    message = problems(tmp_path, tools)
    assert expected in message and "agent.yaml:" in message


def test_an_entry_is_named_after_its_module_script_or_host(tmp_path: Path) -> None:
    bot = load_bot(write_bot(tmp_path, (
        "  - mcp: {command: python, args: [-m, acme.tools]}\n    allow: ['*']\n"
        "  - mcp: {command: node, args: [--flag, /srv/linear-mcp.js]}\n    allow: ['*']\n"
        "  - mcp: {url: 'https://user@mcp.example.com:8443/mcp'}\n    allow: ['*']\n"
        "  - mcp: {url: 'https://mcp.example.com/other'}\n    name: other\n    allow: ['*']\n")),
        {})
    assert [t.name for t in bot.tools] == ["tools", "linear-mcp", "mcp.example.com", "other"]


def test_env_values_and_headers_are_secrets_and_expanded_from_the_environment(
        tmp_path: Path) -> None:
    bot = load_bot(write_bot(tmp_path, (
        "  - mcp: {command: x, env: {TOKEN: '${ACME_TOKEN}', CONFIG: /etc/acme/acme.yaml}}\n"
        "    allow: [a]\n"
        "  - mcp: {url: 'https://h/mcp', headers: {Authorization: 'Bearer ${MCP_KEY}'}}\n"
        "    allow: [b]\n")), {"ACME_TOKEN": "t-123456789", "MCP_KEY": "k-987654321"})
    assert bot.tools[0].mcp is not None
    assert bot.tools[0].mcp.env == {"TOKEN": "t-123456789", "CONFIG": "/etc/acme/acme.yaml"}
    secrets = set(bot_secrets(bot))
    assert {"t-123456789", "Bearer k-987654321", "k-987654321"} <= secrets
    assert "/etc/acme/acme.yaml" not in secrets  # a setting, not a secret


async def test_a_name_offered_twice_is_a_config_error_at_start_naming_both(
        tmp_path: Path) -> None:
    """With allow: ['*'] the names are known only once the servers list them."""
    bot = load_bot(write_bot(tmp_path, (
        "  - name: echo\n    python: tests.tools.sample_tools:shout\n"
        f"  - mcp: {STDIO}\n    name: first\n    allow: ['*']\n"
        f"  - mcp: {STDIO}\n    name: second\n    allow: ['*']\n")), {})
    runtime = BotRuntime(bot, llm=FunctionLLM(lambda request: "ok"),
                         observability=Observability.disabled())
    with pytest.raises(ConfigErrors) as caught:
        await runtime.start()
    await runtime.aclose()
    text = str(caught.value)
    assert "tool 'echo' of MCP server 'first' clashes with tool 'echo'" in text
    assert "tool 'add' of MCP server 'second' clashes with tool 'add' of MCP server 'first'" \
        in text


def test_doctor_lists_each_server_reachable_with_tools_offered_and_allowed(
        tmp_path: Path) -> None:
    path = write_bot(tmp_path, (
        f"  - mcp: {STDIO}\n    name: acme\n    allow: [echo, add]\n"
        "  - mcp: {command: /nonexistent/mcp-server, connect_timeout: 2s}\n    name: gone\n"
        "    allow: ['*']\n"))
    checks = {c.name: c for c in check_bot(path, {})}
    acme = checks["bot agent MCP server acme"]
    assert acme.ok is True and "reachable over stdio" in acme.detail
    assert "offers 10 tool(s): echo, add, whoami" in acme.detail
    assert "allowed: add, echo" in acme.detail
    gone = checks["bot agent MCP server gone"]
    assert gone.ok is False and "/nonexistent/mcp-server" in gone.detail


def test_non_text_parts_are_described_sized_and_images_attached() -> None:
    png = base64.b64encode(b"\x89PNG" + b"\0" * 96).decode()
    result = types.CallToolResult(content=[
        types.TextContent(text="summary"),
        types.ImageContent(data=png, mime_type="image/png"),
        types.AudioContent(data=base64.b64encode(b"RIFF" * 10).decode(), mime_type="audio/wav"),
        types.EmbeddedResource(resource=types.BlobResourceContents(
            uri="file:///r.bin", blob=base64.b64encode(b"x" * 7).decode(),
            mime_type="application/octet-stream")),
        types.ResourceLink(name="report", uri="https://example.com/r")])
    output = to_output(result, max_chars=10_000)
    assert output.text.splitlines() == [
        "summary", "[image image/png, 100 bytes, attached]",
        "[audio audio/wav, 40 bytes, not passed to the model]",
        "[resource file:///r.bin (application/octet-stream), 7 bytes, not passed to the model]",
        "[resource link report: https://example.com/r]"]
    assert [p["type"] for p in output.parts] == ["text", "image", "audio", "resource",
                                                  "resource_link"]
    assert output.attachments == (Attachment(kind="image", mime_type="image/png", data=png),)
    assert b64_size(png) == 100


def test_a_long_result_is_cut_with_a_note_and_plain_text_has_no_parts() -> None:
    output = to_output(types.CallToolResult(content=[types.TextContent(text="x" * 50)]),
                       max_chars=20)
    assert output.text == ("x" * 20 + "\n[truncated: the result is 50 characters; the bot "
                           "reads the first 20 (max_result_chars)]")
    assert output.parts == () and output.attachments == ()


def test_structured_content_alone_is_sent_as_json() -> None:
    output = to_output(types.CallToolResult(content=[], structured_content={"n": 1}),
                       max_chars=100)
    assert output.text == '{"n": 1}'


def test_anthropic_gets_a_tool_results_images_as_image_blocks() -> None:
    messages = to_anthropic_messages([ChatMessage(
        role="tool", content="a red dot", tool_call_id="c1", tool_name="picture",
        attachments=(Attachment(kind="image", mime_type="image/png", data="AAAA"),))])
    (block,) = messages[0]["content"]
    assert block["content"] == [  # type: ignore[index]
        {"type": "text", "text": "a red dot"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "AAAA"}}]


def test_a_bot_without_mcp_entries_needs_no_mcp_import() -> None:
    bot = BotConfig.model_validate({"name": "a", "type": "agent", "llm": {"provider": "offline"},
                                    "tools": ["calculator"]})
    runtime = BotRuntime(bot, llm=FunctionLLM(lambda request: "ok"),
                         observability=Observability.disabled())
    assert runtime.toolbox is not None and runtime.toolbox.sources == []


def test_doctor_says_when_an_http_server_rejects_the_credentials(tmp_path: Path) -> None:
    server = McpHttpServer(token="right-token-123").start()
    try:
        path = write_bot(tmp_path, (
            f"  - mcp: {{url: '{server.url}', headers: {{Authorization: 'Bearer wrong-token-9'}},"
            " connect_timeout: 5s}\n    name: acme\n    allow: ['*']\n"))
        checks = {c.name: c for c in check_bot(path, {})}
    finally:
        server.stop()
    check = checks["bot agent MCP server acme"]
    assert check.ok is False
    assert "HTTP 401 from POST" in check.detail and "rejected the credentials" in check.detail
    assert "wrong-token-9" not in check.detail
