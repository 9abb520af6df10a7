"""Each exported model call's whole input, rebuilt from the deltas the records keep.

An exporter meets a session's ``llm_call`` events in order, so it keeps the last rebuilt input
of each session and applies the next call's delta to it (``opencell.transcript.step``). When
it cannot — a resent batch, a restart, a call it has not seen — it rebuilds the session's
chain from the store once.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

from opencell.exporters.outbox import StoredEvent
from opencell.transcript import ModelInput, step


class CallSource(Protocol):
    def model_calls(self, session_seq: int, upto: int) -> list[StoredEvent]: ...


class ModelInputs:
    """The rebuilt input of each session's latest exported model call (bounded, LRU)."""

    def __init__(self, sessions: int = 1024) -> None:
        self._size = max(1, sessions)
        self._last: OrderedDict[int, tuple[int, ModelInput]] = OrderedDict()

    def of(self, event: StoredEvent, source: CallSource) -> ModelInput:
        """The whole input of the model call ``event`` records."""
        data = event.data
        delta = data.get("input")
        if not isinstance(delta, dict):
            return step(None, data)  # an older record, or content capture was off
        seq = event.session.seq
        cached = self._last.get(seq)
        if cached is not None and cached[0] == event.id:
            return cached[1]
        call = delta.get("call")
        if (cached is not None and cached[0] < event.id and cached[1].call
                and call == cached[1].call + 1):
            result = step(cached[1], data)
        else:
            before: ModelInput | None = None
            for earlier in source.model_calls(seq, event.id):
                if isinstance(earlier.data.get("input"), dict):
                    before = step(before, earlier.data)
            result = before if before is not None else step(None, data)
        self._last[seq] = (event.id, result)
        self._last.move_to_end(seq)
        while len(self._last) > self._size:
            self._last.popitem(last=False)
        return result
