"""@tool: JSON schema from type hints and docstrings, and argument validation by the same model."""

from __future__ import annotations

from typing import Literal

import pytest

from opencell.errors import ToolArgumentsError
from opencell.tools import Tool, ToolContext, tool
from opencell.tools._schema import parse_docstring


@tool
def search(query: str, limit: int = 10, exact: bool = False, ratio: float | None = None,
           tags: list[str] | None = None, order: Literal["new", "old"] = "new",
           ctx: ToolContext | None = None) -> str:
    """Search the knowledge base.

    Longer explanation that belongs to the description.

    Args:
        query: Words to look for.
        limit (int): How many results to return,
            at most 50.
        order: Newest or oldest first.

    Returns:
        The hits, one a line.
    """
    return query


def test_bare_decorator_builds_a_tool_named_after_the_function() -> None:
    assert isinstance(search, Tool)
    assert search.name == "search"
    assert search.is_async is False
    assert search("hi") == "hi"  # still callable as the plain function


def test_schema_types_defaults_and_required() -> None:
    props = search.parameters["properties"]
    assert search.parameters["type"] == "object"
    assert search.parameters["required"] == ["query"]
    assert search.parameters["additionalProperties"] is False
    assert props["query"]["type"] == "string"
    assert props["limit"] == {"type": "integer", "default": 10,
                              "description": "How many results to return, at most 50."}
    assert props["exact"]["type"] == "boolean" and props["exact"]["default"] is False
    assert {"type": "number"} in props["ratio"]["anyOf"]
    assert {"type": "null"} in props["ratio"]["anyOf"]
    assert {"type": "array", "items": {"type": "string"}} in props["tags"]["anyOf"]
    assert props["order"]["enum"] == ["new", "old"]
    assert props["order"]["default"] == "new"


def test_docstring_gives_the_descriptions() -> None:
    assert search.description == ("Search the knowledge base.\n\n"
                                  "Longer explanation that belongs to the description.")
    assert search.parameters["properties"]["query"]["description"] == "Words to look for."
    assert search.parameters["properties"]["order"]["description"] == "Newest or oldest first."
    assert "description" not in search.parameters["properties"]["exact"]


def test_tool_context_is_injected_not_in_the_schema() -> None:
    assert "ctx" not in search.parameters["properties"]
    assert search.context_param == "ctx"


def test_no_generated_titles_but_a_parameter_called_title_survives() -> None:
    @tool
    def note(title: str, schema: int = 0) -> str:
        """Write a note."""
        return title

    assert set(note.parameters["properties"]) == {"title", "schema"}
    assert "title" not in note.parameters
    assert "title" not in note.parameters["properties"]["title"]
    assert note.validate_arguments({"title": "t", "schema": 2}) == {"title": "t", "schema": 2}


def test_decorator_with_arguments() -> None:
    class Opts(__import__("pydantic").BaseModel):
        level: int = 1

    @tool(name="lookup-v2", description="Find things.", options=Opts, timeout=3)
    async def lookup(key: str) -> str:
        return key

    assert lookup.name == "lookup-v2"
    assert lookup.description == "Find things."
    assert lookup.options is Opts
    assert lookup.timeout == 3
    assert lookup.is_async is True


def test_redecorating_renames_and_keeps_the_rest() -> None:
    class Opts(__import__("pydantic").BaseModel):
        level: int = 1

    base = tool(options=Opts, timeout=2)(search.function)
    renamed = tool(base, name="find")
    assert (renamed.name, renamed.options, renamed.timeout) == ("find", Opts, 2)
    assert renamed.parameters == search.parameters


def test_an_object_with_async_call_is_an_async_tool() -> None:
    class Lookup:
        async def __call__(self, key: str) -> str:
            return key

    made = tool(Lookup(), name="lookup")
    assert made.is_async is True
    assert made.parameters["required"] == ["key"]


def test_no_parameters_gives_an_empty_object_schema() -> None:
    @tool
    def ping() -> str:
        return "pong"

    assert ping.parameters["properties"] == {}
    assert ping.description == ""
    assert ping.validate_arguments({}) == {}


def test_unsupported_signatures_are_refused_at_decoration() -> None:
    def spread(*args: int) -> None: ...

    with pytest.raises(TypeError, match="args"):
        tool(spread)
    with pytest.raises(ValueError, match="tool name"):
        tool(name="has space")(lambda: None)


def test_valid_arguments_are_parsed_with_defaults() -> None:
    kwargs = search.validate_arguments({"query": "x", "limit": "5", "tags": ["a"]})
    assert kwargs == {"query": "x", "limit": 5, "exact": False, "ratio": None,
                      "tags": ["a"], "order": "new"}


@pytest.mark.parametrize(("arguments", "expected"), [
    ({}, "query: required argument is missing"),
    ({"query": "x", "limit": "many"}, "limit: Input should be a valid integer"),
    ({"query": "x", "order": "random"}, "order: Input should be 'new' or 'old'"),
    ({"query": "x", "tags": "a"}, "tags"),
    ({"query": "x", "limt": 3}, "unexpected argument 'limt' (did you mean 'limit'?)"),
])
def test_invalid_arguments_say_what_is_wrong(arguments: dict[str, object], expected: str
                                             ) -> None:
    with pytest.raises(ToolArgumentsError, match="invalid arguments for tool 'search'") as info:
        search.validate_arguments(arguments)
    assert expected in str(info.value)
    assert info.value.tool == "search"


def test_arguments_that_are_not_an_object() -> None:
    with pytest.raises(ToolArgumentsError, match="must be a JSON object"):
        search.validate_arguments(["x"])  # type: ignore[arg-type]


def test_docstring_parser_handles_types_and_continuations() -> None:
    summary, args = parse_docstring("""Do it.

    Args:
        a (int): First
            and more.
        b: Second.

    Raises:
        ValueError: never listed as an argument.
    """)
    assert summary == "Do it."
    assert args == {"a": "First and more.", "b": "Second."}
