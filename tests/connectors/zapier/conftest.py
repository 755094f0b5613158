"""The app with the Zapier router mounted, for as long as app.py does not list it."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from guestlist.connectors.zapier.api import router
from tests.connectors.conftest import App


@pytest.fixture
def zapier_app(app: App) -> App:
    served = app.client.app
    assert isinstance(served, FastAPI)
    if not any(getattr(r, "path", "").startswith("/api/zapier/") for r in served.routes):
        served.include_router(router)
    return app
