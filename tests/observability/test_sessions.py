"""SessionTracker: open/touch/close, idle expiry with a manual clock, O(expired) sweeps."""

from __future__ import annotations

from typing import Any

from opencell.messages import ConversationKey
from opencell.sessions import EndReason, Session, SessionTracker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(user: str) -> ConversationKey:
    return ConversationKey(bot="b", platform="test", channel="c", user=user)


def tracker(clock: Clock, closed: list[tuple[str, str, bool]],
            opened: list[str] | None = None, idle: float = 10.0) -> SessionTracker:
    def on_close(s: Session, reason: EndReason, ok: bool, meta: dict[str, Any]) -> None:
        closed.append((s.key.user, reason, ok))

    def on_open(s: Session, user_name: str) -> None:
        if opened is not None:
            opened.append(s.id)

    return SessionTracker(history_turns=5, idle_timeout=idle, bot_type="conversational",
                          on_open=on_open, on_close=on_close, clock=clock)


def test_first_message_opens_later_messages_reuse() -> None:
    clock, closed, opened = Clock(), [], []
    t = tracker(clock, closed, opened)
    first = t.acquire(key("a"))
    t.release(first, failed=False)
    again = t.acquire(key("a"))
    t.release(again, failed=False)
    other = t.acquire(key("b"))
    assert first is again and other is not first
    assert len(opened) == 2 and opened == sorted(opened)  # time-ordered ids
    assert len(t) == 2


def test_idle_sessions_expire_touched_ones_do_not() -> None:
    clock, closed = Clock(), []
    t = tracker(clock, closed)
    a, b = t.acquire(key("a")), t.acquire(key("b"))
    t.release(a, failed=False)
    t.release(b, failed=True)
    clock.now += 6
    t.release(t.acquire(key("a")), failed=False)  # touch a at +6
    clock.now += 5  # +11: b idle for 11 s, a for 5 s
    expired = t.sweep()
    assert [s.key.user for s in expired] == ["b"]
    assert closed == [("b", "idle_timeout", False)]  # its last turn failed
    clock.now += 6
    assert [s.key.user for s in t.sweep()] == ["a"]
    assert closed[-1] == ("a", "idle_timeout", True)
    assert len(t) == 0


def test_a_busy_session_never_expires_mid_turn() -> None:
    clock, closed = Clock(), []
    t = tracker(clock, closed)
    s = t.acquire(key("a"))
    clock.now += 100
    assert t.sweep() == []
    t.release(s, failed=False)
    clock.now += 11
    assert t.sweep() == [s]


def test_expired_conversation_gets_a_new_session_with_empty_history() -> None:
    clock, closed = Clock(), []
    t = tracker(clock, closed)
    first = t.acquire(key("a"))
    first.history.add_turn([])
    t.release(first, failed=False)
    clock.now += 11
    t.sweep()
    second = t.acquire(key("a"))
    assert second is not first and second.id != first.id and len(second.history) == 0


def test_sweep_work_follows_the_expired_not_the_open() -> None:
    clock, closed = Clock(), []
    t = tracker(clock, closed)
    for i in range(5000):
        t.release(t.acquire(key(f"old{i}")), failed=False)
    clock.now += 5
    for i in range(20):
        t.release(t.acquire(key(f"new{i}")), failed=False)
    clock.now += 6  # the 5000 old ones are idle, the 20 new ones are not
    popped_before = len(t._heap)
    expired = t.sweep()
    assert len(expired) == 5000
    assert len(t._heap) == popped_before - 5000  # the new ones were never touched by the sweep
    clock.now += 1
    assert t.sweep() == [] and len(t._heap) == 20


def test_close_all_and_explicit_close_report_reason_and_status() -> None:
    clock, closed = Clock(), []
    t = tracker(clock, closed)
    a = t.acquire(key("a"))
    t.release(a, failed=False)
    t.close(a, "explicit", success=False)
    t.close(a, "explicit")  # closing twice is harmless
    t.release(t.acquire(key("b")), failed=False)
    assert t.close_all("shutdown") == 1
    assert closed == [("a", "explicit", False), ("b", "shutdown", True)]


def test_a_failing_hook_never_reaches_the_caller() -> None:
    def explode(*args: Any) -> None:
        raise RuntimeError("hook bug")

    t = SessionTracker(history_turns=1, idle_timeout=1, bot_type="agent", on_open=explode,
                       on_close=explode, clock=Clock())
    s = t.acquire(key("a"))
    t.release(s, failed=False)
    t.close(s, "explicit")
    assert s.closed
