"""``/api/docs``: the JSON API's reference, rendered on the server from its own OpenAPI schema.

Replaces FastAPI's Swagger UI page, which loads its script and styles from a CDN (blank
offline) and runs an inline script (refused by the dashboard's CSP). This page needs no
script at all: every operation with its parameters and answers, then every schema. The
machine-readable schema stays at ``/api/openapi.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)

METHODS = ("get", "post", "put", "patch", "delete")


@dataclass
class Field:
    """A parameter or a schema property, as one table row."""

    name: str
    where: str
    type: str
    required: bool
    description: str
    default: str = ""


@dataclass
class Operation:
    method: str
    path: str
    summary: str
    description: str
    parameters: list[Field] = field(default_factory=list)
    responses: list[tuple[str, str, str]] = field(default_factory=list)
    """(status, description, schema type)"""

    @property
    def anchor(self) -> str:
        return f"{self.method.upper()} {self.path}"


def type_of(schema: dict[str, Any]) -> str:
    """A short human type: ``string``, ``integer | null``, ``list of SessionOut``, ``"a" | "b"``."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "enum" in schema:
        return " | ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " | ".join(type_of(part) for part in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return f"list of {type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {type_of(schema['additionalProperties'])}"
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    text = str(kind or "any")
    return f"{text} ({schema['format']})" if "format" in schema else text


def _default(schema: dict[str, Any]) -> str:
    return "" if "default" not in schema or schema["default"] is None else str(schema["default"])


def operations(spec: dict[str, Any]) -> list[Operation]:
    """Every documented operation, in the schema's order."""
    found: list[Operation] = []
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            entry = Operation(method=method, path=path, summary=op.get("summary", ""),
                              description=op.get("description", ""))
            for param in op.get("parameters", []):
                schema = param.get("schema", {})
                entry.parameters.append(Field(
                    name=param["name"], where=param.get("in", ""), type=type_of(schema),
                    required=bool(param.get("required")),
                    description=param.get("description") or schema.get("description", ""),
                    default=_default(schema)))
            for status, answer in op.get("responses", {}).items():
                content = answer.get("content", {})
                kinds = [f"{media}: {type_of(body.get('schema', {}))}"
                         if body.get("schema") else media for media, body in content.items()]
                entry.responses.append((status, answer.get("description", ""),
                                        ", ".join(kinds)))
            found.append(entry)
    return found


def schemas(spec: dict[str, Any]) -> dict[str, tuple[str, list[Field]]]:
    """name → (description, properties) for every schema in ``components``."""
    result: dict[str, tuple[str, list[Field]]] = {}
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        required = set(schema.get("required", []))
        fields = [Field(name=prop, where="", type=type_of(body), required=prop in required,
                        description=body.get("description", ""), default=_default(body))
                  for prop, body in schema.get("properties", {}).items()]
        result[name] = (schema.get("description", ""), fields)
    return result


@router.get("/api/docs")
def api_docs(request: Request) -> Response:
    from opencell.dashboard.pages import render

    spec: dict[str, Any] = request.app.openapi()
    return render(request, "api_docs.html", {
        "info": spec.get("info", {}), "operations": operations(spec),
        "schemas": schemas(spec)})
