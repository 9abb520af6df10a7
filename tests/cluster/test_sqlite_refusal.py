"""Several bot processes on one SQLite file: a clear refusal naming PostgreSQL, never two
processes silently keeping their own conversations and budgets (SCALE-OUT.md §A.4).

Reading processes (``opencell sessions``, the dashboard) still share the file freely, and
sessions/leases between processes are judged by file locks (tests/observability/test_cluster.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, clean_env, opencell

DEMO = REPO / "bots" / "demo.yaml"


def test_a_second_bot_process_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    env = clean_env(OPENCELL_DATABASE_URL=url)
    first = subprocess.Popen([sys.executable, "-m", "opencell", "chat", str(DEMO),
                              "--user", "alice"], cwd=REPO, env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        assert first.stdin is not None and first.stdout is not None
        first.stdin.write("hello\n")
        first.stdin.flush()
        assert first.stdout.readline()  # it answered: it runs its bot on the file now
        second = opencell("chat", str(DEMO), "--user", "bob", stdin="hi\n", env=env)
        assert second.returncode != 0
        assert "PostgreSQL" in second.stderr and "another OpenCell process" in second.stderr
        reading = opencell("sessions", "--json", env=env)  # readers are welcome
        assert reading.returncode == 0, reading.stderr
    finally:
        if first.stdin is not None:
            first.stdin.close()
        first.wait(60)
    again = opencell("chat", str(DEMO), "--user", "bob", stdin="hi\n", env=env)
    assert again.returncode == 0, again.stderr  # the file is free again
