"""What a replay returns: per turn the recorded and the new run side by side, and totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opencell.replay.recording import Tally, ToolUse


def _calls(uses: list[ToolUse]) -> list[tuple[str, str]]:
    from opencell.replay.recording import arguments_key

    return [arguments_key(use.name, use.arguments) for use in uses]


@dataclass(slots=True)
class TurnComparison:
    """One user turn: as recorded and as replayed."""

    number: int
    text: str
    recorded_reply: str | None
    reply: str
    recorded_failed: bool
    failed: bool
    recorded: Tally
    new: Tally
    recorded_latency_ms: float | None
    latency_ms: float
    recorded_tools: list[ToolUse] = field(default_factory=list)
    tools: list[ToolUse] = field(default_factory=list)
    error: str | None = None
    """Why the new turn failed (the polite reply the user would have seen says less)."""

    @property
    def changed(self) -> bool:
        """The new reply differs from the recorded one."""
        return (self.recorded_reply or "") != self.reply

    @property
    def tools_changed(self) -> bool:
        """The model asked for other tool calls (names or arguments) than it did then."""
        return _calls(self.recorded_tools) != _calls(self.tools)

    @property
    def unanswered(self) -> int:
        """Tool calls the recording could not answer (``--tools recorded``)."""
        return sum(1 for use in self.tools if use.served == "unanswered")

    def to_dict(self) -> dict[str, Any]:
        return {
            "turn": self.number, "text": self.text, "recorded_reply": self.recorded_reply,
            "reply": self.reply, "changed": self.changed, "recorded_failed":
            self.recorded_failed, "failed": self.failed, "error": self.error,
            "recorded": {**self.recorded.to_dict(), "latency_ms": self.recorded_latency_ms},
            "new": {**self.new.to_dict(), "latency_ms": self.latency_ms},
            "tools_changed": self.tools_changed, "unanswered_tools": self.unanswered,
            "recorded_tools": [u.to_dict() for u in self.recorded_tools],
            "tools": [u.to_dict() for u in self.tools],
        }


@dataclass(slots=True)
class ReplayResult:
    """A replayed session: ``turns`` side by side, ``recorded`` vs ``new`` totals.

    ``replay_id`` is the replay's own session (platform ``replay``, linked to ``source_id``);
    ``version`` the bot version it ran, ``source_version`` the one the source ran.
    """

    source_id: str
    replay_id: str
    bot: str
    provider: str
    model: str
    tools_mode: str
    version: str
    source_version: str | None
    turns: list[TurnComparison] = field(default_factory=list)
    recorded: Tally = field(default_factory=Tally)
    new: Tally = field(default_factory=Tally)
    recorded_latency_ms: float = 0.0
    latency_ms: float = 0.0

    @property
    def failed_turns(self) -> int:
        return sum(1 for t in self.turns if t.failed)

    @property
    def changed_turns(self) -> int:
        return sum(1 for t in self.turns if t.changed)

    @property
    def unanswered_tools(self) -> int:
        return sum(t.unanswered for t in self.turns)

    @property
    def ok(self) -> bool:
        """Every turn answered without failing."""
        return self.failed_turns == 0

    def add(self, turn: TurnComparison) -> None:
        self.turns.append(turn)
        self.recorded.add(turn.recorded)
        self.new.add(turn.new)
        self.recorded_latency_ms += turn.recorded_latency_ms or 0.0
        self.latency_ms += turn.latency_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id, "replay_id": self.replay_id, "bot": self.bot,
            "provider": self.provider, "model": self.model, "tools": self.tools_mode,
            "version": self.version, "source_version": self.source_version,
            "turns": [t.to_dict() for t in self.turns],
            "totals": {"turns": len(self.turns), "changed": self.changed_turns,
                       "failed": self.failed_turns, "unanswered_tools": self.unanswered_tools,
                       "recorded": {**self.recorded.to_dict(),
                                    "latency_ms": self.recorded_latency_ms},
                       "new": {**self.new.to_dict(), "latency_ms": self.latency_ms}},
        }
