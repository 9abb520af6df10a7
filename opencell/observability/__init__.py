"""Sessions, records, the recorder and store, and the manual-tracking facade."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opencell.observability.facade import AgentOpsFacade, get_agentops

__all__ = ["AgentOpsFacade", "get_agentops"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from opencell.observability import facade

        return getattr(facade, name)
    raise AttributeError(f"module 'opencell.observability' has no attribute '{name}'")
