"""The README says what the code does, checked by machine: its Python examples and the shell
blocks marked ``<!-- readme-test: run -->`` run as written, every environment variable the
code reads is in its table and in ``.env.example``, and the messages it quotes are the code's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from opencell.config.settings import BudgetsConfig
from tests.conftest import REPO, clean_env, opencell

README = (REPO / "README.md").read_text(encoding="utf-8")
ENV_EXAMPLE = (REPO / ".env.example").read_text(encoding="utf-8")
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<mark>[a-z]+) -->\n)?"
                   r"```(?P<lang>\w+)\n(?P<code>.*?)```", re.S)
VARIABLE = re.compile(r"[\"']((?:OPENCELL|ANTHROPIC|OPENAI|MOONSHOT|DISCORD|SLACK|AGENTOPS|OTEL)"
                      r"_[A-Z0-9_]+)[\"']")


def blocks(lang: str, mark: str | None = None) -> list[str]:
    return [m["code"] for m in BLOCK.finditer(README)
            if m["lang"] == lang and (mark is None or m["mark"] == mark)]


def run_env(store: str) -> dict[str, str]:
    env = clean_env(OPENCELL_DATABASE_URL=store)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.parametrize("code", blocks("python"), ids=lambda code: code.splitlines()[0][:40])
def test_each_python_example_runs_as_written(code: str, isolated_store: str) -> None:
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=run_env(isolated_store),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{code}\n---\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("code", blocks("bash", "run"), ids=lambda code: code.splitlines()[0][:40])
def test_each_marked_shell_example_runs_as_written(code: str, isolated_store: str) -> None:
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=REPO,
                            env=run_env(isolated_store), capture_output=True, text=True,
                            timeout=180, check=False)
    assert result.returncode == 0, f"{code}\n---\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr


def test_there_are_examples_to_run() -> None:
    assert len(blocks("python")) >= 4 and blocks("bash", "run")


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    read = set()
    for path in (REPO / "opencell").rglob("*.py"):
        read.update(VARIABLE.findall(path.read_text(encoding="utf-8")))
    assert len(read) > 15
    table = README[README.index("## Environment variables"):]
    table = table[:table.index("\n## ")]
    assert sorted(v for v in read if f"`{v}`" not in table) == []
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE, re.M))
    assert sorted(read - listed) == []


def test_the_missing_key_message_quoted_is_the_one_printed(isolated_store: str) -> None:
    quoted = re.search(r"the bot \(exit 2\):\n\n    (error: .*)\n", README)
    assert quoted is not None
    result = opencell("chat", "bots/support.yaml",
                      env=clean_env(OPENCELL_DATABASE_URL=isolated_store))
    assert result.returncode == 2
    assert result.stderr.strip() == quoted[1]


def test_the_blocked_message_quoted_is_the_default() -> None:
    default = BudgetsConfig().blocked_message
    quoted = re.findall(r"^  blocked_message: \"(.*)\"$", README, re.M)
    assert quoted and all(text == default for text in quoted)
