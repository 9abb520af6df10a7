"""A throwaway PostgreSQL server on 127.0.0.1 for the suite, and a fresh schema per test.

The server is started once per test session from the machine's PostgreSQL binaries
(``initdb``/``pg_ctl``; SCALE-OUT.md §A.1) in a temporary directory, with durability off
(``-N``, ``fsync=off``): it is thrown away at the end. Each test that asks for PostgreSQL gets
its own schema (``search_path`` in the URL), so tests never see each other's rows and no test
pays for a ``CREATE DATABASE``.

``OPENCELL_TEST_POSTGRES_URL`` points the suite at an existing server instead (a database the
suite may create schemas in). ``OPENCELL_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) turns "no
PostgreSQL here" from a skip into an error, so CI can never pass by skipping the PostgreSQL half.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tests.fakes.ports import free_port

DRIVER = "postgresql+psycopg"


def _bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` live: ``$OPENCELL_PG_BIN``, Debian's layout, or PATH."""
    if os.environ.get("OPENCELL_PG_BIN"):
        return Path(os.environ["OPENCELL_PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                   key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)
    if found:
        return Path(found[-1])
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _as_postgres(argv: list[str]) -> list[str]:
    """``initdb`` refuses to run as root: run the server as the ``postgres`` user there."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@dataclass
class PostgresServer:
    """One running throwaway server; ``url(schema)`` names a database URL inside it."""

    base_url: str
    root: Path | None = None
    bin_dir: Path | None = None
    schemas: list[str] = field(default_factory=list)

    @classmethod
    def start(cls) -> PostgresServer:
        """Start a new server; raises ``RuntimeError`` saying why it could not."""
        bin_dir = _bin_dir()
        if bin_dir is None or not (bin_dir / "initdb").exists():
            raise RuntimeError("no PostgreSQL binaries (initdb) found: apt-get install "
                               "postgresql, or set OPENCELL_PG_BIN or OPENCELL_TEST_POSTGRES_URL")
        root = Path(tempfile.mkdtemp(prefix="opencell-pg-"))
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        port = free_port()
        data = root / "data"
        settings = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        for argv in ([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                      "--auth=trust", "-E", "UTF8", "--no-locale", "-N"],
                     [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "pg.log"),
                      "-o", settings, "-w", "-t", "60", "start"]):
            done = subprocess.run(_as_postgres(argv), capture_output=True, text=True,
                                  check=False, timeout=120)
            if done.returncode != 0:
                raise RuntimeError(f"{Path(argv[0]).name} failed: {done.stderr or done.stdout}")
        server = cls(f"{DRIVER}://postgres@127.0.0.1:{port}/postgres", root, bin_dir)
        server.execute("CREATE DATABASE opencell")
        server.base_url = f"{DRIVER}://postgres@127.0.0.1:{port}/opencell"
        return server

    def execute(self, sql: str) -> None:
        """Run one statement in autocommit mode (schema and database management)."""
        import psycopg

        conninfo = self.base_url.replace(DRIVER, "postgresql", 1)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def url(self, schema: str) -> str:
        """A store URL whose tables all live in ``schema`` (created here, dropped at stop)."""
        self.execute(f'CREATE SCHEMA "{schema}"')
        self.schemas.append(schema)
        return f"{self.base_url}?options={quote(f'-csearch_path={schema}')}"

    def fresh_url(self) -> str:
        """A URL to a new empty schema, for one test."""
        return self.url(f"t_{uuid.uuid4().hex[:16]}")

    def stop(self) -> None:
        """Stop the server and remove its files (an external server only loses our schemas)."""
        if self.root is None or self.bin_dir is None:
            for schema in self.schemas:
                self.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            return
        subprocess.run(_as_postgres([str(self.bin_dir / "pg_ctl"), "-D",
                                     str(self.root / "data"), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, check=False, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def server_from_env() -> PostgresServer:
    """The server the suite should use: an external one named by the environment, or our own."""
    external = os.environ.get("OPENCELL_TEST_POSTGRES_URL")
    if external:
        return PostgresServer(external)
    return PostgresServer.start()
