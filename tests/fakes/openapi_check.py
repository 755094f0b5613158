"""Check requests against a vendor's official OpenAPI 3.0 document.

A fake calls `OpenAPIDocument.check_request` for each request it receives and answers
400 (and records the violations, so the test fails) when the document does not allow
it: an unknown path or method, an undeclared query parameter, a required parameter
missing, a value of the wrong type, a body that does not validate against the
operation's request schema.

This is a small validator of the schema keywords vendor documents use (OpenAPI 3.0's
`nullable` and `readOnly` included, which plain JSON Schema validators do not know):
`$ref`, `type`, `properties`, `required`, `additionalProperties`, `items`, `enum`,
`minLength`/`maxLength`, `minimum`/`maximum`, `minItems`/`maxItems`, `pattern`,
`allOf`/`anyOf`/`oneOf`. A schema using any other validation keyword raises
`UnsupportedSchema` rather than passing unchecked. JSON bodies are validated whole;
form-encoded bodies field by field (each value as a query parameter is); multipart
bodies are not validated.

`closed_objects=True` treats an object without `additionalProperties` as closed: a
property the schema does not declare is a violation (Square answers
`UNKNOWN_BODY_PARAMETER`; its document declares no `additionalProperties: false`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

# Keywords that only annotate: never a reason to refuse a value.
ANNOTATIONS = frozenset(
    {
        "description", "example", "examples", "title", "default", "deprecated", "format",
        "nullable", "readOnly", "writeOnly", "externalDocs", "discriminator", "xml",
    }
)
VALIDATION = frozenset(
    {
        "$ref", "type", "properties", "required", "additionalProperties", "items", "enum",
        "minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems", "pattern",
        "allOf", "anyOf", "oneOf",
    }
)


class UnsupportedSchema(NotImplementedError):
    """The document uses a keyword this checker does not validate."""


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    spec: dict[str, Any]
    path_params: dict[str, str] = field(default_factory=dict)

    @property
    def operation_id(self) -> str:
        return str(self.spec.get("operationId", f"{self.method} {self.template}"))


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    pattern = "".join(
        f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts
    )
    return re.compile(f"^{pattern}$")


class OpenAPIDocument:
    def __init__(self, document: dict[str, Any], *, closed_objects: bool = False) -> None:
        version = str(document.get("openapi", ""))
        if not version.startswith("3."):
            raise UnsupportedSchema(f"not an OpenAPI 3 document (openapi={version!r})")
        self.document = document
        self.closed_objects = closed_objects
        # Literal paths before templated ones (`/v2/customers/groups` before
        # `/v2/customers/{customer_id}`): fewer parameters first.
        self._paths = sorted(
            ((_template_regex(t), t, ops) for t, ops in document.get("paths", {}).items()),
            key=lambda item: (item[1].count("{"), item[1]),
        )

    @classmethod
    def load(cls, path: str | Path, *, closed_objects: bool = False) -> OpenAPIDocument:
        return _load(str(path), closed_objects)

    # -- lookup ----------------------------------------------------------------------

    def resolve(self, schema: Any) -> Any:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/"):
                raise UnsupportedSchema(f"only local references are followed: {ref!r}")
            target: Any = self.document
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            schema = target
            seen += 1
            if seen > 50:
                raise UnsupportedSchema(f"reference loop at {ref}")
        return schema

    def operation(self, method: str, path: str) -> Operation | None:
        method = method.lower()
        for regex, template, ops in self._paths:
            match = regex.match(path)
            if match and isinstance(ops.get(method), dict):
                return Operation(method, template, ops[method], match.groupdict())
        return None

    def _parameters(self, op: Operation) -> list[dict[str, Any]]:
        shared = self.document["paths"][op.template].get("parameters", [])
        params = [self.resolve(p) for p in [*shared, *op.spec.get("parameters", [])]]
        return params

    # -- requests ----------------------------------------------------------------------

    def check_request(
        self,
        method: str,
        path: str,
        *,
        query: Iterable[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> list[str]:
        """What the document does not allow in this request (empty: allowed)."""
        op = self.operation(method, path)
        if op is None:
            allowed = [
                m.upper()
                for regex, _, ops in self._paths
                if regex.match(path)
                for m in ops
                if m in ("get", "put", "post", "delete", "patch", "head", "options")
            ]
            if allowed:
                return [f"{method.upper()} {path}: method not in the document (has {allowed})"]
            return [f"{method.upper()} {path}: no such path in the document"]
        where = f"{op.operation_id} ({method.upper()} {op.template})"
        problems: list[str] = []
        params = self._parameters(op)
        lower_headers = {k.lower(): v for k, v in (headers or {}).items()}
        query_values: dict[str, list[str]] = {}
        for name, value in query:
            query_values.setdefault(name, []).append(value)
        declared_query = {p["name"] for p in params if p.get("in") == "query"}
        for name in query_values:
            if name not in declared_query:
                problems.append(
                    f"{where}: undeclared query parameter {name!r} "
                    f"(declared: {', '.join(sorted(declared_query)) or 'none'})"
                )
        for param in params:
            name, place = param["name"], param.get("in")
            if place == "query":
                values = query_values.get(name)
            elif place == "path":
                values = [op.path_params[name]] if name in op.path_params else None
            elif place == "header":
                got = lower_headers.get(name.lower())
                values = None if got is None else [got]
            else:
                continue
            if values is None:
                if param.get("required"):
                    problems.append(f"{where}: required {place} parameter {name!r} missing")
                continue
            schema = param.get("schema", {})
            problems.extend(self._check_param(f"{where}: {place} {name}", schema, values))
        problems.extend(self._check_body(where, op, body, content_type))
        return problems

    def _check_param(self, where: str, schema: Any, values: list[str]) -> list[str]:
        schema = self.resolve(schema)
        kind = schema.get("type") if isinstance(schema, dict) else None
        if kind == "array":
            items = schema.get("items", {})
            return [p for v in values for p in self._check_param(where, items, [v])]
        if len(values) > 1:
            return [f"{where}: given {len(values)} times"]
        raw = values[0]
        value: Any = raw
        if kind == "integer":
            if not re.fullmatch(r"-?\d+", raw):
                return [f"{where}: {raw!r} is not an integer"]
            value = int(raw)
        elif kind == "number":
            try:
                value = float(raw)
            except ValueError:
                return [f"{where}: {raw!r} is not a number"]
        elif kind == "boolean":
            if raw not in ("true", "false"):
                return [f"{where}: {raw!r} is not true or false"]
            value = raw == "true"
        return self.validate(schema, value, where)

    def _check_body(
        self, where: str, op: Operation, body: bytes | None, content_type: str | None
    ) -> list[str]:
        request_body = self.resolve(op.spec.get("requestBody"))
        if not request_body:
            return [f"{where}: takes no body, got {len(body)} bytes"] if body else []
        if not body:
            return [f"{where}: a body is required"] if request_body.get("required") else []
        content = request_body.get("content", {})
        media = (content_type or "").split(";")[0].strip().lower()
        if media not in content:
            return [f"{where}: content type {media or 'none'!r} not in {sorted(content)}"]
        schema = content[media].get("schema", {})
        if media == "application/x-www-form-urlencoded":
            return self._check_form(f"{where}: form", schema, body)
        if media != "application/json":
            return []  # multipart and other bodies are not validated
        try:
            value = json.loads(body)
        except ValueError as exc:
            return [f"{where}: body is not JSON ({exc})"]
        return self.validate(schema, value, f"{where}: body", request=True)

    def _check_form(self, where: str, schema: Any, body: bytes) -> list[str]:
        """A form body: each field checked like a query parameter against its property."""
        schema = self.resolve(schema)
        properties = schema.get("properties", {})
        fields: dict[str, list[str]] = {}
        for name, value in parse_qsl(body.decode(), keep_blank_values=True):
            fields.setdefault(name, []).append(value)
        problems = [
            f"{where}: required field {name!r} missing"
            for name in schema.get("required", [])
            if name not in fields
        ]
        for name, values in fields.items():
            if name in properties:
                problems.extend(self._check_param(f"{where}.{name}", properties[name], values))
            elif schema.get("additionalProperties") is False or (
                self.closed_objects and "additionalProperties" not in schema
            ):
                problems.append(f"{where}: unknown field {name!r}")
        return problems

    # -- values ------------------------------------------------------------------------

    def validate(self, schema: Any, value: Any, where: str, *, request: bool = False) -> list[str]:
        """Violations of `value` against an OpenAPI 3.0 schema object."""
        problems: list[str] = []
        self._validate(schema, value, where, request, problems)
        return problems

    def _validate(
        self, schema: Any, value: Any, where: str, request: bool, out: list[str]
    ) -> None:
        if value is None and isinstance(schema, dict) and schema.get("nullable"):
            return  # Square writes `nullable` beside `$ref`
        schema = self.resolve(schema)
        if schema is True or schema == {} or schema is None:
            return
        if schema is False:
            out.append(f"{where}: not allowed")
            return
        unknown = [
            k for k in schema if k not in VALIDATION and k not in ANNOTATIONS
            and not k.startswith("x-")
        ]
        if unknown:
            raise UnsupportedSchema(f"{where}: schema keywords {unknown} are not checked")
        if value is None:
            if not schema.get("nullable") and "type" in schema:
                out.append(f"{where}: null is not allowed")
            return
        for sub in schema.get("allOf", []):
            self._validate(sub, value, where, request, out)
        for name in ("anyOf", "oneOf"):
            if name in schema:
                passing = sum(
                    not self.validate(sub, value, where, request=request) for sub in schema[name]
                )
                if passing == 0 or (name == "oneOf" and passing > 1):
                    out.append(f"{where}: matches {passing} of the {name} schemas")
        kind = schema.get("type")
        if kind is not None and not _is_type(value, kind):
            out.append(f"{where}: expected {kind}, got {type(value).__name__} {value!r:.60}")
            return
        if "enum" in schema and value not in schema["enum"]:
            shown = ", ".join(map(str, schema["enum"][:12]))
            out.append(f"{where}: {value!r:.60} is not one of {shown}")
        if isinstance(value, str):
            if "minLength" in schema and len(value) < schema["minLength"]:
                out.append(f"{where}: shorter than {schema['minLength']}")
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                out.append(f"{where}: longer than {schema['maxLength']}")
            if "pattern" in schema and not re.search(schema["pattern"], value):
                out.append(f"{where}: does not match {schema['pattern']!r}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                out.append(f"{where}: {value} is below {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                out.append(f"{where}: {value} is above {schema['maximum']}")
        if isinstance(value, list):
            if "minItems" in schema and len(value) < schema["minItems"]:
                out.append(f"{where}: fewer than {schema['minItems']} items")
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                out.append(f"{where}: more than {schema['maxItems']} items")
            for i, item in enumerate(value):
                self._validate(schema.get("items", {}), item, f"{where}[{i}]", request, out)
        if isinstance(value, dict):
            self._validate_object(schema, value, where, request, out)

    def _validate_object(
        self, schema: dict[str, Any], value: dict[str, Any], where: str, request: bool,
        out: list[str],
    ) -> None:
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                out.append(f"{where}: required property {name!r} missing")
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            if name in properties:
                sub = properties[name]
                read_only = isinstance(sub, dict) and (
                    sub.get("readOnly") or self.resolve(sub).get("readOnly")
                )
                if request and read_only:
                    out.append(f"{where}.{name}: read-only, not to be sent")
                    continue
                self._validate(sub, item, f"{where}.{name}", request, out)
            elif isinstance(extra, dict):
                self._validate(extra, item, f"{where}.{name}", request, out)
            elif extra is False or (extra is None and self.closed_objects and properties):
                out.append(
                    f"{where}: unknown property {name!r} "
                    f"(known: {', '.join(sorted(properties))})"
                )


def _is_type(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    raise UnsupportedSchema(f"unknown type {kind!r}")


@cache
def _load(path: str, closed_objects: bool) -> OpenAPIDocument:
    return OpenAPIDocument(json.loads(Path(path).read_text()), closed_objects=closed_objects)
