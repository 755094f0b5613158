"""The request checker the Square fake uses, on Square's own document."""

from __future__ import annotations

import json

import pytest

from tests.fakes.openapi_check import OpenAPIDocument, UnsupportedSchema
from tests.fakes.square import SPEC


@pytest.fixture(scope="module")
def spec() -> OpenAPIDocument:
    return OpenAPIDocument.load(SPEC, closed_objects=True)


def post(spec: OpenAPIDocument, path: str, body: object, method: str = "POST") -> list[str]:
    return spec.check_request(
        method, path, body=json.dumps(body).encode(), content_type="application/json"
    )


def test_paths_methods_and_query(spec: OpenAPIDocument) -> None:
    assert spec.check_request("GET", "/v2/customers", query=[("limit", "100")]) == []
    # A literal path wins over a template: groups is not a customer id.
    op = spec.operation("GET", "/v2/customers/groups")
    assert op is not None and op.operation_id == "ListCustomerGroups"
    assert "no such path" in spec.check_request("GET", "/v3/customers")[0]
    assert "method not in the document" in spec.check_request("PATCH", "/v2/customers")[0]
    (problem,) = spec.check_request("GET", "/v2/invoices")
    assert "required query parameter 'location_id' missing" in problem
    (problem,) = spec.check_request("GET", "/v2/customers", query=[("limit", "ten")])
    assert "'ten' is not an integer" in problem
    (problem,) = spec.check_request("GET", "/v2/customers", query=[("sort_order", "UP")])
    assert "'UP' is not one of DESC, ASC" in problem


def test_bodies(spec: OpenAPIDocument) -> None:
    assert post(spec, "/v2/customers/groups", {"group": {"name": "VIP"}}) == []
    assert "required property 'group' missing" in post(spec, "/v2/customers/groups", {})[0]
    (problem,) = post(spec, "/v2/customers/groups", {"group": {"name": "VIP", "id": "X"}})
    assert "group.id: read-only" in problem
    # `nullable` beside a `$ref` (how Square writes it): null clears the address.
    assert post(spec, "/v2/customers/C1", {"address": None, "version": 2}, "PUT") == []
    (problem,) = post(spec, "/v2/customers/C1", {"version": "2"}, "PUT")
    assert "body.version: expected integer" in problem
    assert "a body is required" in spec.check_request("POST", "/v2/customers/search")[0]
    assert "takes no body" in spec.check_request("GET", "/v2/customers", body=b"{}")[0]
    bad = spec.check_request(
        "POST", "/v2/customers/search", body=b"{", content_type="application/json"
    )
    assert "not JSON" in bad[0]


def test_a_keyword_it_does_not_know_is_not_a_pass() -> None:
    doc = OpenAPIDocument({"openapi": "3.0.0", "paths": {}})
    with pytest.raises(UnsupportedSchema):
        doc.validate({"type": "integer", "multipleOf": 5}, 7, "x")
    with pytest.raises(UnsupportedSchema):
        OpenAPIDocument({"swagger": "2.0", "paths": {}})


def test_form_bodies_field_by_field() -> None:
    # For fakes of form-posting vendors (Twilio); Square itself posts JSON.
    form = "application/x-www-form-urlencoded"
    schema = {"type": "object", "required": ["To"],
              "properties": {"To": {"type": "string"}, "PageSize": {"type": "integer"}}}
    doc = OpenAPIDocument(
        {"openapi": "3.0.0", "paths": {"/m": {"post": {"operationId": "Send", "requestBody": {
            "required": True, "content": {form: {"schema": schema}}}}}}},
        closed_objects=True,
    )
    assert doc.check_request("POST", "/m", body=b"To=%2B1&PageSize=3", content_type=form) == []
    assert doc.check_request("POST", "/m", body=b"To=1&PageSize=x&Foo=1", content_type=form) == [
        "Send (POST /m): form.PageSize: 'x' is not an integer",
        "Send (POST /m): form: unknown field 'Foo'",
    ]
    assert doc.check_request("POST", "/m", body=b"PageSize=3", content_type=form) == [
        "Send (POST /m): form: required field 'To' missing"
    ]
