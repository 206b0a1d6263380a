"""Check a JSON answer against the discovery document's schema of a method's response: every
key must be a property the schema names, with the JSON type (and string format) it declares."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from tests.emulators.google import DISCOVERY


def document(api: str) -> dict[str, Any]:
    name = {"gmail": "gmail.v1.json", "calendar": "calendar.v3.json"}[api]
    found: dict[str, Any] = json.loads((DISCOVERY / name).read_text())
    return found


def response_schema(doc: dict[str, Any], method_id: str) -> str:
    """The name of the schema a method answers with."""
    stack = [doc]
    while stack:
        node = stack.pop()
        stack.extend(node.get("resources", {}).values())
        for method in node.get("methods", {}).values():
            if method["id"] == method_id:
                return str(method["response"]["$ref"])
    raise KeyError(method_id)


def problems(
    doc: dict[str, Any], schema: dict[str, Any] | str, value: Any, at: str = ""
) -> list[str]:
    """Where `value` departs from `schema` (a schema or the name of one), as key paths."""
    if isinstance(schema, str):
        schema = {"$ref": schema}
    if "$ref" in schema:
        schema = doc["schemas"][schema["$ref"]]
    kind = schema.get("type")
    found: list[str] = []
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{at or '.'}: not an object"]
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                found += problems(doc, properties[key], item, f"{at}.{key}")
            elif extra is not None:
                found += problems(doc, extra, item, f"{at}.{key}")
            else:
                found.append(f"{at}.{key}: not in the schema")
    elif kind == "array":
        if not isinstance(value, list):
            return [f"{at}: not an array"]
        for i, item in enumerate(value):
            found += problems(doc, schema["items"], item, f"{at}[{i}]")
    elif kind == "string":
        if not isinstance(value, str):
            return [f"{at}: not a string"]
        form = schema.get("format")
        try:
            if form in ("int64", "uint64"):
                int(value)
            elif form == "date-time":
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            elif form == "date":
                date.fromisoformat(value)
        except ValueError:
            found.append(f"{at}: {value!r} is not {form}")
    elif kind == "integer" and (not isinstance(value, int) or isinstance(value, bool)):
        found.append(f"{at}: not an integer")
    elif kind == "boolean" and not isinstance(value, bool):
        found.append(f"{at}: not a boolean")
    return found
