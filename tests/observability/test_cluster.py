"""Several processes on one store: liveness by lock, never by hostname, PID or clock (D1, D2,
D4 of SCALE-OUT.md), on SQLite and on PostgreSQL.

The other process is real (``tests/fakes/holder.py``): a session it holds open and an outbox
lease it holds must survive any other process's checks while it lives, including a checker in
another PID namespace on the same host, and must be taken over within seconds once it is killed
with SIGKILL, by processes that were already running (no restart).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from opencell.exporters.outbox import Outbox
from opencell.store import tables
from opencell.store.janitor import Janitor
from opencell.store.store import Store
from tests.conftest import REPO, clean_env, opencell
from tests.fakes.waiting import until_sync


class Holder:
    """The other process: started, read, killed."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.holder"], cwd=REPO, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=clean_env(OPENCELL_DATABASE_URL=url))
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the holder process did not start"
        info = json.loads(line)
        self.session: str = info["session"]
        self.owner: str = info["owner"]
        self.lease = info["lease"]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(30)


@pytest.fixture
def holder(store_url: str) -> Iterator[Holder]:
    running = Holder(store_url)
    yield running
    running.stop()


def status(store: Store, session_id: str) -> str:
    with store.reading() as conn:
        return str(conn.execute(sa.select(tables.sessions.c.status).where(
            tables.sessions.c.id == session_id)).scalar_one())


def test_a_live_process_keeps_its_sessions_and_its_lease(store_url: str,
                                                          holder: Holder) -> None:
    store = Store.open(store_url)
    assert store.close_orphans() == []
    assert Janitor(store).run_once() == 0
    assert status(store, holder.session) == "open"
    assert store.is_alive(holder.owner)
    assert holder.lease is not None
    assert Outbox(store, "otlp").claim() is None  # the holder's lease stays the holder's
    store.close()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare(1) for a PID namespace")
def test_a_checker_in_another_pid_namespace_leaves_a_live_process_alone(
        store_url: str, holder: Holder) -> None:
    """D1: same hostname, different PID namespace (two containers with host networking).
    ``opencell sessions`` closes orphans first; here it must not close the live one."""
    done = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable,
                           "-m", "opencell", "sessions", "--json"], cwd=REPO, text=True,
                          capture_output=True, env=clean_env(OPENCELL_DATABASE_URL=store_url),
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    store = Store.open(store_url)
    assert status(store, holder.session) == "open"
    store.close()


def test_a_killed_process_is_cleaned_up_by_the_survivors_within_seconds(
        store_url: str, holder: Holder) -> None:
    """D2 and D4: nobody restarts; a process already running closes the dead one's session
    as ``interrupted`` and takes its exporter lease over, with a new fence."""
    store = Store.open(store_url)
    janitor = Janitor(store, interval=0.05).start()
    outbox = Outbox(store, "otlp")
    assert outbox.claim() is None  # the holder's lease, live and unexpired
    holder.kill()
    try:
        until_sync(lambda: status(store, holder.session) != "open", "the janitor's close")
    finally:
        janitor.stop()
    with store.reading() as conn:
        row = conn.execute(sa.select(tables.sessions.c.end_reason).where(
            tables.sessions.c.id == holder.session)).scalar_one()
    assert row == "interrupted"
    assert not store.is_alive(holder.owner)
    assert outbox.claim() == tuple(holder.lease)  # taken at once, where the holder left it
    with store.reading() as conn:
        fence = conn.execute(sa.select(tables.export_cursors.c.fence)).scalar_one()
    assert fence == 2
    store.close()


def test_a_stale_lease_holder_cannot_move_the_cursor(store_url: str) -> None:
    """D4: after a take-over (the lease ran out while its holder was paused), the old holder's
    cursor write is refused, so it cannot overwrite the new holder's progress."""
    store = Store.open(store_url)
    clock = [1000.0]
    first = Outbox(store, "otlp", owner="a:1/aaaa", lease_s=30, wall=lambda: clock[0])
    second = Outbox(store, "otlp", owner="a:1/bbbb", lease_s=30, wall=lambda: clock[0])
    start = first.claim()
    assert start is not None
    clock[0] += 31
    assert second.claim() == start
    assert not first.advance((start[0], start[1] + 5), events_delivered=5, spans_delivered=5)
    assert second.advance((start[0], start[1] + 3), events_delivered=3, spans_delivered=3)
    store.close()


def test_the_cli_judges_processes_the_same_way(store_url: str, holder: Holder) -> None:
    done = opencell("sessions", "--json", env=clean_env(OPENCELL_DATABASE_URL=store_url))
    assert done.returncode == 0, done.stderr
    assert holder.session in done.stdout and '"open"' in done.stdout
