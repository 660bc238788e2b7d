"""Validate user-written data (``[tool.tpcheck]``, plan files) against the JSON Schemas that
ship in ``tpcheck/schemas/``, with messages that name the key, the file and its line.

The schemas are real JSON Schema (draft 2020-12; the tests check them with ``jsonschema`` and
check that this validator agrees with it). The core does not depend on ``jsonschema``: this
module implements the subset the schemas use — ``type``, ``properties``, ``required``,
``additionalProperties``, ``items``, ``enum``, ``minimum``, ``exclusiveMinimum``,
``minItems``, ``minLength``, ``pattern``, ``anyOf`` and local ``$ref`` — and refuses any other
keyword, so a schema edit cannot silently weaken validation.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list, tuple), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float), "null": (type(None),),
}
_NAMES = {"object": "a table", "array": "an array", "string": "a string",
          "boolean": "true or false", "integer": "an integer", "number": "a number",
          "null": "null"}
#: What a failed ``pattern`` means, for the patterns the schemas use.
_PATTERNS = {r"\S": "is blank: write some text"}
_KNOWN = {"$schema", "$id", "$defs", "$ref", "$comment", "title", "description", "default",
          "examples", "type", "properties", "required", "additionalProperties", "items",
          "enum", "minimum", "exclusiveMinimum", "minItems", "minLength", "pattern", "anyOf"}


@dataclass(frozen=True)
class Problem:
    """One place where the data breaks the schema: its key path and what is wrong."""

    path: tuple[str | int, ...]
    message: str

    @property
    def key(self) -> str:
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out or "(top level)"


@functools.cache
def load(name: str) -> dict[str, Any]:
    """A schema shipped with tpcheck (``config``, ``plan``)."""
    text = resources.files("tpcheck.schemas").joinpath(f"{name}.schema.json").read_text(
        encoding="utf-8")
    return json.loads(text)


def problems(data: Any, schema: dict[str, Any], root: dict[str, Any] | None = None,
             path: tuple[str | int, ...] = ()) -> list[Problem]:
    """Every way ``data`` breaks ``schema`` (empty: valid)."""
    root = root if root is not None else schema
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"schema keyword(s) {sorted(unknown)} are not supported by "
                         "tpcheck.schema")
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"only local $defs references are supported, not {ref!r}")
        return problems(data, root["$defs"][ref.removeprefix("#/$defs/")], root, path)
    if "anyOf" in schema:
        options = [problems(data, s, root, path) for s in schema["anyOf"]]
        if all(options):
            return min(options, key=len) if len(options) == 1 else [
                Problem(path, "expected " + " or ".join(_describe(s, root)
                                                        for s in schema["anyOf"])
                        + f", got {_show(data)}")]
        return []
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_is(data, k) for k in kinds):
            return [Problem(path, f"expected {' or '.join(_NAMES[k] for k in kinds)}, got "
                                  f"{_show(data)}")]
    out: list[Problem] = []
    if "enum" in schema and data not in schema["enum"]:
        out.append(Problem(path, f"expected one of {', '.join(map(repr, schema['enum']))}, "
                                 f"got {_show(data)}"))
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        if "minimum" in schema and data < schema["minimum"]:
            out.append(Problem(path, f"expected at least {schema['minimum']}, got {data}"))
        if "exclusiveMinimum" in schema and data <= schema["exclusiveMinimum"]:
            out.append(Problem(path, f"expected more than {schema['exclusiveMinimum']}, "
                                     f"got {data}"))
    if isinstance(data, str):
        if len(data) < schema.get("minLength", 0):
            out.append(Problem(path, "expected a non-empty string" if schema["minLength"] == 1
                               else f"expected at least {schema['minLength']} characters"))
        if "pattern" in schema and not re.search(schema["pattern"], data):
            said = _PATTERNS.get(schema["pattern"], f"does not match {schema['pattern']}")
            out.append(Problem(path, f"{data!r} {said}"))
    if isinstance(data, (list, tuple)):
        if "items" in schema:  # wrong items first: the more specific message
            for i, item in enumerate(data):
                out += problems(item, schema["items"], root, (*path, i))
        if len(data) < schema.get("minItems", 0):
            out.append(Problem(path, f"expected at least {schema['minItems']} item(s), got "
                                     f"{len(data)}"))
    if isinstance(data, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in data:
                out.append(Problem(path, f"the required key {key!r} is missing"))
        extra = schema.get("additionalProperties", True)
        for key, value in data.items():
            if key in props:
                out += problems(value, props[key], root, (*path, key))
            elif extra is False:
                close = difflib.get_close_matches(str(key), list(props), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                out.append(Problem((*path, key), f"unknown key; {hint}expected one of "
                                                 f"{', '.join(sorted(props))}"))
            elif isinstance(extra, dict):
                out += problems(value, extra, root, (*path, key))
    return out


def _is(data: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(data, bool):
        return False
    if kind == "integer" and isinstance(data, float):
        return data.is_integer()
    return isinstance(data, _TYPES[kind])


def _describe(schema: dict[str, Any], root: dict[str, Any]) -> str:
    if "$ref" in schema:
        return _describe(root["$defs"][schema["$ref"].removeprefix("#/$defs/")], root)
    if "enum" in schema:
        return "one of " + ", ".join(map(repr, schema["enum"]))
    kind = schema.get("type", "anything")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(_NAMES.get(k, k) for k in kinds)
    if "items" in schema and "type" in schema["items"]:
        text += f" of {_NAMES[schema['items']['type']].split(' ', 1)[-1]}s"
    return text


def _show(data: Any) -> str:
    if isinstance(data, bool):
        return "true" if data else "false"
    if isinstance(data, str):
        return f"the string {data!r}"
    if isinstance(data, dict):
        return "a table"
    if isinstance(data, (list, tuple)):
        return f"an array {json.dumps(list(data), default=str)[:60]}"
    return repr(data)
