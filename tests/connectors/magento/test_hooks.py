"""Magento sends no webhooks: the hook URL refuses and stores nothing; the API keeps
the credentials hidden and `connections test` signs in. One app per backend (it is
the slow fixture)."""

from __future__ import annotations

from collections.abc import Callable

from guestlist.store.tables import inbox
from tests.connectors.conftest import App
from tests.connectors.magento.conftest import Served, count


def test_magento_through_the_api(app: App, magento: Callable[..., Served]) -> None:
    served = magento(customers=4)
    answer = app.client.post(
        "/api/connections",
        json={"platform": "magento", "name": "Bottle Shop", "settings": served.settings()},
        headers=app.admin,
    )
    assert answer.status_code == 201, answer.text
    assert served.fake.admin_password not in answer.text
    body = answer.json()
    data = body.get("data", body)
    assert "admin_password" not in data["settings"]
    ref = int(data["id"])

    # No WEBHOOK capability: 404 no_webhooks, nothing stored, nothing logged as received.
    hook = app.client.post(
        f"/hooks/magento/{ref}", content=b'{"id": 1}',
        headers={"Content-Type": "application/json"},
    )
    assert hook.status_code == 404
    assert hook.json()["error"]["code"] == "no_webhooks"
    unknown = app.client.post("/hooks/magento/999", content=b"{}")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_connection"
    assert count(app.engine, inbox) == 0
    log = app.client.get(f"/api/connections/{ref}/log", headers=app.read)
    assert log.status_code == 200
    assert "webhook" not in {e["kind"] for e in log.json()["data"]}

    tested = app.client.post(f"/api/connections/{ref}/test", headers=app.admin)
    assert tested.json() == {
        "ok": True, "message": "signed in to store view 'default': 4 customers"
    }
    assert served.fake.token_requests == 1

    half = app.client.post(
        "/api/connections",
        json={"platform": "magento", "name": "Half",
              "settings": served.settings(admin_password=None)},
        headers=app.admin,
    )
    assert half.status_code == 422
    assert "go together" in half.text
