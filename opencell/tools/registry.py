"""The ``@tool`` decorator: a function becomes a ``Tool`` with a schema and validated arguments.

A ``Tool`` carries one pydantic model built from the function's signature: it gives the JSON
schema the model sees *and* validates the arguments the model sends, so the two cannot drift.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from opencell.errors import ToolArgumentsError
from opencell.tools._schema import clean_schema, describe_errors, parse_docstring

if TYPE_CHECKING:
    pass

M = TypeVar("M", bound=BaseModel)
Located = tuple[tuple[str | int, ...], str]
"""``(location inside the tool entry, message)``, e.g. ``(("allow_hosts",), "…")``."""

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What a tool name may be (the providers' common limit)."""


@dataclass(kw_only=True)
class ToolContext:
    """What a tool may learn about the call it serves; a parameter annotated with it is injected."""

    bot: str
    """The bot whose model asked for the call."""
    user_id: str
    """The platform user the turn is for."""
    options: Any
    """The tool's options from the bot YAML: an instance of its options model, else a dict."""
    call_id: str
    """The model's id for this call."""
    tool: str = ""
    """The name the model called the tool by."""

    def options_as(self, model: type[M]) -> M:
        """The options as ``model`` (validating them if they are still a plain dict)."""
        if isinstance(self.options, model):
            return self.options
        return model.model_validate(self.options or {})


@dataclass(frozen=True, eq=False)
class Tool:
    """A function the model may call, with the JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]
    """JSON schema (an object) of the arguments, without the injected ``ToolContext``."""
    function: Callable[..., Any]
    is_async: bool
    options: type[BaseModel] | None = None
    """Pydantic model of the tool's options (the extra keys of its YAML entry), if any."""
    timeout: float | None = None
    """Default seconds per call; a ``timeout:`` in the bot YAML wins."""
    arguments_model: type[BaseModel] = field(default=BaseModel, repr=False, compare=False)
    context_param: str | None = field(default=None, repr=False, compare=False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the plain function, as if it had not been decorated."""
        return self.function(*args, **kwargs)

    def validate_arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for the function, or ``ToolArgumentsError`` saying what is wrong."""
        if not isinstance(arguments, Mapping):
            raise ToolArgumentsError(
                f"arguments for tool '{self.name}' must be a JSON object, "
                f"got {type(arguments).__name__}", tool=self.name)
        try:
            parsed = self.arguments_model.model_validate(dict(arguments))
        except ValidationError as exc:
            problems = describe_errors(exc, self.parameters)
            raise ToolArgumentsError(f"invalid arguments for tool '{self.name}': {problems}",
                                     tool=self.name) from None
        fields = type(parsed).model_fields
        return {info.alias or key: getattr(parsed, key) for key, info in fields.items()}

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> Any:
        """Validate ``arguments`` and call the function (sync functions in a worker thread)."""
        kwargs = self.validate_arguments(arguments)
        if self.context_param:
            kwargs[self.context_param] = context
        if self.is_async:
            return await self.function(**kwargs)
        return await asyncio.to_thread(functools.partial(self.function, **kwargs))


@overload
def tool(function: Callable[..., Any], /, *, name: str | None = None,
         description: str | None = None, options: type[BaseModel] | None = None,
         timeout: float | None = None) -> Tool: ...
@overload
def tool(*, name: str | None = None, description: str | None = None,
         options: type[BaseModel] | None = None, timeout: float | None = None
         ) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(function: Callable[..., Any] | None = None, /, *, name: str | None = None,
         description: str | None = None, options: type[BaseModel] | None = None,
         timeout: float | None = None) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function a tool: ``@tool`` or ``@tool(name=…, options=Model, timeout=…)``.

    The schema comes from the type hints; the docstring's text before its sections is the
    description and its Google-style ``Args:`` lines describe the parameters. A parameter
    annotated ``ToolContext`` is injected at call time and hidden from the model.
    """
    def build(fn: Callable[..., Any]) -> Tool:
        return _build(fn, name=name, description=description, options=options, timeout=timeout)

    return build if function is None else build(function)


def _build(fn: Callable[..., Any], *, name: str | None, description: str | None,
           options: type[BaseModel] | None, timeout: float | None) -> Tool:
    if isinstance(fn, Tool):  # re-decorating: keep what is not overridden
        options = options or fn.options
        timeout = timeout or fn.timeout
        fn = fn.function
    tool_name: str = name or str(getattr(fn, "__name__", ""))
    if not NAME_PATTERN.match(tool_name):
        raise ValueError(f"tool name {tool_name!r} must be 1-64 letters, digits, _ or -")
    if options is not None and not (isinstance(options, type) and issubclass(options, BaseModel)):
        raise TypeError(f"tool '{tool_name}': options must be a pydantic model class")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"tool '{tool_name}': timeout must be greater than zero")
    summary, arg_docs = parse_docstring(inspect.getdoc(fn))
    call_method = None if inspect.isroutine(fn) else type(fn).__call__  # callable objects
    try:
        hints = typing.get_type_hints(call_method or fn, include_extras=True)
    except Exception as exc:
        raise TypeError(f"tool '{tool_name}': cannot resolve type hints: {exc}") from exc
    fields: dict[str, Any] = {}
    context_param = None
    for index, param in enumerate(inspect.signature(fn).parameters.values()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise TypeError(f"tool '{tool_name}': parameter '{param.name}' must be a plain "
                            "or keyword-only parameter (no *args, **kwargs or '/')")
        annotation = hints.get(param.name, Any)
        if _is_context(annotation):
            context_param = param.name
            continue
        default = ... if param.default is param.empty else param.default
        # Aliased internal names: a parameter may be called `schema` or `_x` without clashing
        # with BaseModel's own attributes; validation errors and the schema use the alias.
        fields[f"p{index}"] = (annotation, Field(default, alias=param.name,
                                                 description=arg_docs.get(param.name)))
    try:
        model = create_model(f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"),
                             **fields)
        schema = clean_schema(model.model_json_schema())
    except Exception as exc:
        raise TypeError(f"tool '{tool_name}': cannot build a JSON schema: {exc}") from exc
    schema.setdefault("properties", {})
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call_method)
    return Tool(name=tool_name, description=description if description is not None else summary,
                parameters=schema, function=fn, is_async=is_async, options=options,
                timeout=timeout, arguments_model=model, context_param=context_param)


def _is_context(annotation: Any) -> bool:
    """``ToolContext``, ``ToolContext | None`` or ``Annotated[ToolContext, …]``."""
    if annotation is ToolContext:
        return True
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_context(args[0])
    is_union = origin is typing.Union or origin is types.UnionType
    return is_union and len(args) == 1 and args[0] is ToolContext


# ---------------------------------------------------------------- built-ins and YAML entries
