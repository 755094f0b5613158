"""The tracking API's request and response shapes, for the OpenAPI document only.

Requests are validated by hand in `tracking.py` (Pydantic per event is too slow for
the hot path); these models describe the same rules for `/docs` and client authors.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Id = str | int | float


class _Call(BaseModel):
    model_config = ConfigDict(extra="allow")

    userId: Id | None = Field(
        None, description="Your id for the person; userId or anonymousId is required."
    )
    anonymousId: Id | None = Field(None, description="A device or cookie id.")
    context: dict[str, Any] | None = Field(
        None,
        description="Ip, userAgent, traits, externalIds ([{id, type, collection, encoding}]) …",
    )
    integrations: dict[str, Any] | None = None
    timestamp: datetime | None = Field(None, description="When it happened (ISO-8601).")
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = Field(
        None, description="When the client sent it; used to correct the client's clock skew."
    )
    messageId: str | None = Field(None, description="Unique per message; used to deduplicate.")


class _SingleCall(_Call):
    writeKey: str | None = Field(
        None, description="The write key, when it is not sent as the HTTP Basic username."
    )


class IdentifyCall(_SingleCall):
    type: Literal["identify"] | None = None
    traits: dict[str, Any] | None = Field(None, description="email, phone, firstName, …")


class TrackCall(_SingleCall):
    type: Literal["track"] | None = None
    event: str = Field(description="The action, e.g. `Order Completed`.")
    properties: dict[str, Any] | None = None


class PageCall(_SingleCall):
    type: Literal["page"] | None = None
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] | None = None


class ScreenCall(_SingleCall):
    type: Literal["screen"] | None = None
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] | None = None


class GroupCall(_SingleCall):
    type: Literal["group"] | None = None
    groupId: Id = Field(description="The group (account, company) the person belongs to.")
    traits: dict[str, Any] | None = Field(None, description="Traits of the group.")


class AliasCall(_SingleCall):
    type: Literal["alias"] | None = None
    userId: Id = Field(description="The new id.")
    previousId: Id = Field(description="The id the person was known by until now.")


class BatchIdentify(_Call):
    type: Literal["identify"]
    traits: dict[str, Any] | None = None


class BatchTrack(_Call):
    type: Literal["track"]
    event: str
    properties: dict[str, Any] | None = None


class BatchPage(_Call):
    type: Literal["page"]
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] | None = None


class BatchScreen(_Call):
    type: Literal["screen"]
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] | None = None


class BatchGroup(_Call):
    type: Literal["group"]
    groupId: Id
    traits: dict[str, Any] | None = None


class BatchAlias(_Call):
    type: Literal["alias"]
    userId: Id
    previousId: Id


BatchMessage = BatchIdentify | BatchTrack | BatchPage | BatchScreen | BatchGroup | BatchAlias


class BatchCall(BaseModel):
    model_config = ConfigDict(extra="allow")

    batch: list[BatchMessage] = Field(
        description="Up to 500 KB in all and 32 KB per message; all are stored or none."
    )
    context: dict[str, Any] | None = Field(
        None, description="Merged under every message's own context."
    )
    sentAt: datetime | None = None
    integrations: dict[str, Any] | None = None
    writeKey: str | None = None


class Accepted(BaseModel):
    success: Literal[True] = True


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable, e.g. `missing_identity`.")
    message: str
    field: str | None = Field(None, description="The offending field, e.g. `batch[3].userId`.")


class Rejected(BaseModel):
    success: Literal[False] = False
    code: str = Field(description="Same as error.code (Segment's clients read it here).")
    message: str = Field(description="Same as error.message.")
    error: ErrorDetail


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {key: _inline_refs(value, defs) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline_refs(item, defs) for item in node]
    return node


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` describing a JSON request body of `model`, with no dangling refs."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline_refs(schema, defs)}},
        }
    }
