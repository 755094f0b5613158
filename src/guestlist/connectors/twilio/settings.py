"""A Twilio connection's settings."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from guestlist.connectors.base import ConnectorSettings
from guestlist.consent.keywords import DEFAULT, KeywordConfig
from guestlist.consent.twiml import DEFAULT_REPLIES, ReplyTexts

API_URL = "https://api.twilio.com"


class KeywordWords(BaseModel):
    """A shop's changes to the default keyword lists (docs/sms-keywords.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    add_opt_out: tuple[str, ...] = ()
    remove_opt_out: tuple[str, ...] = ()
    add_opt_in: tuple[str, ...] = ()
    remove_opt_in: tuple[str, ...] = ()
    add_help: tuple[str, ...] = ()
    remove_help: tuple[str, ...] = ()
    without_plain_language: tuple[str, ...] = ()

    def config(self) -> KeywordConfig:
        return _config(self)


@lru_cache(maxsize=64)
def _config(words: KeywordWords) -> KeywordConfig:
    if words == KeywordWords():
        return DEFAULT
    return DEFAULT.with_words(**words.model_dump())


class TwilioSettings(ConnectorSettings):
    # The account the messages come to (`AccountSid` in every webhook): a delivery for
    # another account is refused even when its signature is good.
    account_sid: str = Field(pattern=r"^AC[0-9A-Za-z]{32}$")
    # `webhook_secret` (inherited) is the account's Auth Token: Twilio signs each
    # webhook with it (X-Twilio-Signature). It is also the REST password unless an
    # API key is given.
    api_key_sid: str | None = Field(default=None, pattern=r"^SK[0-9A-Za-z]{32}$")
    api_key_secret: SecretStr | None = None
    # True (long codes, toll-free numbers, WhatsApp senders in a Messaging Service):
    # Twilio answers STOP/START/HELP itself and guestlist stays silent on them (one
    # confirmation, SMS-5). False for a standalone short code, where Twilio answers
    # nothing and guestlist sends every confirmation.
    twilio_answers_keywords: bool = True
    # The shop's keyword words, e.g. {"add_opt_out": ["BAJA"]} (a JSON object, or a
    # JSON string from `--set keywords='{…}'`).
    keywords: KeywordWords = KeywordWords()

    @field_validator("keywords", mode="before")
    @classmethod
    def _json_string(cls, value: Any) -> Any:
        if isinstance(value, str | bytes):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"not JSON: {exc}") from None
        return value

    @field_validator("keywords")
    @classmethod
    def _words_apply(cls, value: KeywordWords) -> KeywordWords:
        value.config()  # ValueError (a required word removed, a clash) names `keywords`
        return value

    @model_validator(mode="after")
    def _key_pair(self) -> TwilioSettings:
        if (self.api_key_sid is None) != (self.api_key_secret is None):
            raise ValueError("api_key_sid and api_key_secret go together")
        return self

    @property
    def api_url(self) -> str:
        return self.base_url or API_URL

    @property
    def replies(self) -> ReplyTexts:
        return DEFAULT_REPLIES if self.twilio_answers_keywords else _OWN_REPLIES


_OWN_REPLIES = ReplyTexts(provider_answers=frozenset())
