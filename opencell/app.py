"""App: loads bots, starts their adapters, dispatches messages, stops gracefully."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opencell.adapters import Adapter, create_adapter
from opencell.budgets import BudgetLedger
from opencell.config import BotConfig, OpenCellConfig
from opencell.errors import OpenCellError
from opencell.messages import IncomingMessage, Reply
from opencell.observability.facade import install
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime

if TYPE_CHECKING:
    from opencell.dashboard.server import DashboardServer

log = logging.getLogger("opencell.app")

AdapterFactory = Callable[[BotConfig, str], Adapter]


class App:
    """Runs several bots, each on the platforms its YAML names.

    Everything that can fail on a bad setup (missing secrets, unknown platforms, user
    middleware that does not import) fails in ``__init__``/``start``, before any platform is
    contacted. ``stop`` lets in-flight turns finish (bounded), then stops the adapters.
    """

    def __init__(
        self,
        bots: Sequence[BotConfig],
        config: OpenCellConfig | None = None,
        *,
        platforms: Mapping[str, Sequence[str]] | None = None,
        adapter_factory: AdapterFactory = create_adapter,
        env: Mapping[str, str] | None = None,
        runtimes: Mapping[str, BotRuntime] | None = None,
        observability: Observability | None = None,
        dashboard: bool = False,
    ) -> None:
        self.config = config or OpenCellConfig()
        self.bots = {bot.name: bot for bot in bots}
        self.observability = observability or Observability.from_config(self.config, bots, env)
        install(self.observability)
        self.runtimes: dict[str, BotRuntime] = {}
        self.adapters: list[Adapter] = []
        self.dashboard: DashboardServer | None = None
        """The in-process dashboard (``dashboard=True``), serving this App's store."""
        self.budgets: BudgetLedger | None = None
        """The budget ledger every runtime reserves against (None: no budgets configured)."""
        try:
            if self.observability.store is not None:
                self.observability.store.serve_alone()  # SQLite: one bot process per file
            self.budgets = BudgetLedger.from_config(self.config, bots, self.observability)
            self._build(bots, runtimes or {}, platforms, adapter_factory, env)
            if dashboard:
                self.dashboard = self._dashboard_server(env)
        except BaseException:
            self.observability.close(timeout=1.0)
            install(None)
            raise
        self._stopping = False
        self._closing = False
        self._stop_requested = asyncio.Event()

    def _build(self, bots: Sequence[BotConfig], runtimes: Mapping[str, BotRuntime],
               platforms: Mapping[str, Sequence[str]] | None, adapter_factory: AdapterFactory,
               env: Mapping[str, str] | None) -> None:
        self.runtimes.update(runtimes)
        for bot in bots:
            if bot.name not in self.runtimes:
                self.runtimes[bot.name] = BotRuntime(bot, env=env,
                                                     observability=self.observability,
                                                     budgets=self.budgets)
        wanted = platforms or {bot.name: bot.platforms.named() for bot in bots}
        for bot in bots:
            names = wanted.get(bot.name, ())
            if not names:
                raise bot.locate(("platforms",), "names no platform; add e.g. `console: {}`")
            for name in names:
                adapter = adapter_factory(bot, name)
                adapter.feedback = self.observability.feedback
                self.adapters.append(adapter)
        for adapter in self.adapters:
            adapter.use_store(self.observability.store)

    async def dispatch(self, message: IncomingMessage) -> Reply | None:
        """Hand one message to its bot. Once ``stop`` has let the turns in flight finish,
        messages are dropped; before that, a message an adapter took on is answered (an
        adapter stops taking them when the stop begins: ``Adapter.stop_accepting``).

        Adapters call this; they count the turns in flight (what ``stop`` waits for)."""
        if self._closing:
            return None
        runtime = self.runtimes.get(message.key.bot)
        if runtime is None:
            raise OpenCellError(f"no bot named '{message.key.bot}' is running")
        return await runtime.dispatch(message)

    def _dashboard_server(self, env: Mapping[str, str] | None) -> DashboardServer:
        from opencell.dashboard.server import DashboardServer

        if self.observability.store is None:
            raise OpenCellError("the dashboard needs the observability store, which is off")
        recorder = self.observability.recorder
        running = self.observability.exporters
        exporter_stats = None if running is None else running.metrics
        ledger = self.budgets
        return DashboardServer.from_config(self.config.dashboard, self.observability.store,
                                           env=env, recorder_stats=lambda: recorder.stats,
                                           exporter_stats=exporter_stats,
                                           budgets=None if ledger is None else lambda: ledger)

    async def start(self) -> None:
        if self.budgets is not None:
            self.budgets.start(self.adapters)
        if self.dashboard is not None:
            await self.dashboard.start()
        for runtime in self.runtimes.values():
            await runtime.start()
        for adapter in self.adapters:
            await adapter.start(self.dispatch)
            log.info("adapter started bot=%s platform=%s", adapter.bot.name, adapter.platform)

    def request_stop(self) -> None:
        """Ask ``run`` to stop (signal handlers call this)."""
        self._stop_requested.set()

    async def run(self, *, handle_signals: bool = True,
                  on_ready: Callable[[App], None] | None = None) -> None:
        """Start, serve until a signal or until every adapter has finished, then stop.

        ``on_ready(app)`` is called once every adapter has started (the CLI prints a line).
        """
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, self.request_stop)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError):
                    pass  # not the main thread, or a platform without signals
        try:
            await self.start()
            if on_ready is not None:
                on_ready(self)
            waiters: list[asyncio.Task[Any]] = [
                asyncio.create_task(self._stop_requested.wait()),
                asyncio.create_task(self._all_finished())]
            _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.stop()

    async def _all_finished(self) -> None:
        if not self.adapters:
            await asyncio.Event().wait()
        await asyncio.gather(*(adapter.finished.wait() for adapter in self.adapters))

    async def stop(self, timeout: float = 10.0) -> None:
        """Refuse new messages, let in-flight turns finish and their replies go out (up to
        ``timeout`` in all), stop the adapters, close sessions as ``shutdown``, flush.

        With other processes on the store (PostgreSQL), the sessions of Slack and Discord
        conversations are handed over instead: left open for the process that gets their
        next message (``BotRuntime.hand_over``).

        Each step is isolated: one that fails is logged and the rest still run, and the
        recorder is always flushed last.
        """
        if self._stopping:
            return
        self._stopping = True
        for adapter in self.adapters:
            adapter.stop_accepting()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            for adapter in self.adapters:
                if not await adapter.drain(max(0.0, deadline - loop.time())):
                    log.warning("stop: %d turn(s) still running on %s after %.0fs; their "
                                "sessions close now and later records are dropped",
                                adapter.in_flight, adapter.platform, timeout)
            self._closing = True
            # Before the adapters stop: an alert channel posts through one of them.
            if self.budgets is not None:
                await self._step("budget alerts", self._close_budgets())
            for adapter in self.adapters:
                await self._step(f"{adapter.platform} adapter", adapter.stop())
            shared = {adapter.platform for adapter in self.adapters if adapter.shared}
            for runtime in self.runtimes.values():
                if shared:
                    await self._step(f"bot {runtime.name} hand-over", runtime.hand_over(shared))
                await self._step(f"bot {runtime.name}", runtime.aclose())
            if self.dashboard is not None:
                await self._step("dashboard", self.dashboard.stop())
        finally:
            if not self.observability.close(timeout=5.0):
                log.warning("stop: not every event could be stored within 5s")
            install(None)

    async def _close_budgets(self) -> None:
        if self.budgets is not None and not await asyncio.to_thread(self.budgets.close, 5.0):
            log.warning("stop: some budget alerts could not be delivered within 5s")

    @staticmethod
    async def _step(what: str, step: Awaitable[object]) -> None:
        try:
            await step
        except Exception as exc:  # noqa: BLE001 - one part must not keep the others running
            log.warning("stop: %s failed: %s: %s", what, type(exc).__name__, exc)
