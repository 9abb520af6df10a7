"""A second OpenCell process for cluster tests: it opens the store, starts a session, takes an
exporter's outbox lease, says so on stdout (one JSON line), then waits for stdin to close.

``python -m tests.fakes.holder`` with ``OPENCELL_DATABASE_URL`` set. The test kills it with
SIGKILL (a crash) or closes its stdin (a graceful stop).
"""

from __future__ import annotations

import json
import os
import sys

from opencell.config import OpenCellConfig, StoreConfig
from opencell.exporters.outbox import Outbox
from opencell.observability.observer import Observability


def main() -> None:
    url = os.environ["OPENCELL_DATABASE_URL"]
    obs = Observability.from_config(OpenCellConfig(store=StoreConfig(url=url)))
    assert obs.store is not None
    session = obs.start_session(bot="holder", bot_type="agent", user_id="u", platform="api")
    obs.custom(session, "alive", {})
    obs.recorder.flush(10)
    lease = Outbox(obs.store, "otlp").claim()
    print(json.dumps({"session": session, "owner": obs.store.owner(),
                      "lease": list(lease) if lease else None}), flush=True)
    sys.stdin.read()
    obs.end_session(session, reason="shutdown", success=True)
    obs.close()


if __name__ == "__main__":
    main()
