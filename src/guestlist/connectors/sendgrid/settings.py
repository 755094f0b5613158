"""SendGrid Inbound Parse settings: the path secret, and optional HTTP Basic credentials."""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from guestlist.connectors.base import ConnectorSettings


class SendGridSettings(ConnectorSettings):
    # SendGrid sends the userinfo of the Parse URL (`https://user:pass@host/…`) as an
    # `Authorization: Basic` header. Optional: the path secret alone protects the URL.
    basic_auth_username: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[^:\s/@]+$"
    )
    basic_auth_password: SecretStr | None = Field(default=None, validate_default=True)
    # The parse hostname (the MX subdomain). When set, a post none of whose envelope
    # recipients is at this host is refused 403: another Parse setting posting here.
    hostname: str | None = Field(
        default=None, max_length=253,
        pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
    )

    @field_validator("hostname", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower().rstrip(".") if isinstance(value, str) else value

    @field_validator("basic_auth_password")
    @classmethod
    def _both_or_neither(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        username = info.data.get("basic_auth_username")
        if value is not None and not value.get_secret_value():
            raise ValueError("basic_auth_password may not be empty")
        if value is not None and username is None:
            raise ValueError("basic_auth_password needs basic_auth_username")
        if value is None and username is not None:
            raise ValueError("basic_auth_username needs basic_auth_password")
        if value is not None and any(c in value.get_secret_value() for c in "@/"):
            # It goes into a URL's userinfo: `@` and `/` would end it.
            raise ValueError("basic_auth_password may not contain @ or /")
        return value
