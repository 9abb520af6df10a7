"""Replay: rerun a recorded session's user turns against the bot as it is now, or changed.

``await runtime.replay(session_id, …)`` (see ``BotRuntime.replay``) reads the session back
from the store (:mod:`.recording`), runs its user turns in order through a fresh runtime of
the (changed) bot — so the model sees the replay's own history, not the recorded replies —
with tool calls answered per :mod:`.tools`, metered per :mod:`.meter`, and returns a
:class:`ReplayResult`. The replay is itself a session (platform ``replay``) linked to its
source (``replay_of``) and stamped with the bot version it ran.
"""

from opencell.replay.meter import Spend
from opencell.replay.recording import Recording, Tally, ToolUse, read_recording
from opencell.replay.result import ReplayResult, TurnComparison
from opencell.replay.runner import Overrides, run_replay
from opencell.replay.tools import TOOL_MODES, ToolMode

__all__ = ["TOOL_MODES", "Overrides", "Recording", "ReplayResult", "Spend", "Tally",
           "ToolMode", "ToolUse", "TurnComparison", "read_recording", "run_replay"]
