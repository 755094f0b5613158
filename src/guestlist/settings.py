"""The one place environment variables are read."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GUESTLIST_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///guestlist.db",
        description="SQLAlchemy URL; the default is an embedded SQLite file (WAL mode).",
    )
    public_url: str = "http://127.0.0.1:8000"
    # The shop's name in SMS/WhatsApp keyword replies and on consent pages (SMS-4, SMS-5).
    shop_name: str = "guestlist"
    secret_key: str = "dev-insecure-secret-change-me"
    default_phone_region: str = "US"
    # How many inbox envelopes one worker transaction takes at a time.
    worker_batch_size: int = 200
    worker_poll_seconds: float = 0.2
    log_level: str = "INFO"
    # JSON file overriding guestlist.identity.rules.IdentityRules (priority, limits…).
    identity_rules_file: str | None = None
    # Where a profile's age is judged when neither its age records nor its address
    # say (docs/age.md, Jurisdiction); unset: such profiles are never of age anywhere.
    default_jurisdiction: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$",
        description="ISO 3166 code such as US-TX or GB",
    )
    # Retention (compliance P-4, P-3a; docs/privacy.md, Retention and legal hold).
    inbox_retention_days: int = Field(
        default=30,
        ge=1,
        description="Days a processed raw inbox envelope is kept before its body goes (P-4).",
    )
    inactive_profile_review_days: int = Field(
        default=1095,
        ge=1,
        description="Days without activity or granted consent before a profile is "
        "flagged for review (P-4).",
    )
    consent_legal_hold_days: int = Field(
        default=1461,
        ge=1,
        description="Days an erased person's consent evidence is held after the last "
        "message before it is purged (P-3a; 4 years, the TCPA limitation period).",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
