"""The app, under the name the Zapier tests use (its router is in api/app.py ROUTERS)."""

from __future__ import annotations

import pytest

from tests.connectors.conftest import App


@pytest.fixture
def zapier_app(app: App) -> App:
    return app
