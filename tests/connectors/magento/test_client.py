"""Signing in, the fake's protocol, and the searchCriteria each page asks for."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from guestlist.connectors._http.client import VendorError
from guestlist.connectors._http.paginate import search_criteria_params
from guestlist.connectors.magento.client import STREAMS, Cursor, page_params
from guestlist.connectors.magento.settings import MagentoSettings
from guestlist.connectors.registry import connector_for
from tests.connectors.magento.conftest import Served
from tests.fakes.magento import UNAUTHORIZED


def test_settings_need_one_way_to_sign_in() -> None:
    base = {"store_url": "https://shop.example/"}
    with pytest.raises(ValueError, match="required"):
        MagentoSettings.model_validate(base)
    with pytest.raises(ValueError, match="not both"):
        MagentoSettings.model_validate({**base, "access_token": "t", "admin_username": "a",
                                        "admin_password": "p"})
    with pytest.raises(ValueError, match="go together"):
        MagentoSettings.model_validate({**base, "admin_username": "a"})
    settings = MagentoSettings.model_validate({**base, "access_token": "t"})
    assert settings.api_root == "https://shop.example/rest/default/V1"
    other = MagentoSettings.model_validate(
        {**base, "access_token": "t", "store_code": "de", "base_url": "http://127.0.0.1:9/"}
    )
    assert other.api_root == "http://127.0.0.1:9/rest/de/V1"


def test_admin_token_is_fetched_once_and_refreshed_after_expiry(
    magento: Callable[..., Served],
) -> None:
    served = magento(customers=3)
    with served.client() as client:
        check = connector_for("magento").check(client, MagentoSettings.model_validate(
            served.settings()))
        assert check == "signed in to store view 'default': 3 customers"
        client.get("customers/search", params=search_criteria_params([], page_size=1,
                                                                      current_page=1))
        assert served.fake.token_requests == 1
        served.fake.expire_tokens()  # 4 hours later
        answer = client.get("orders", params=search_criteria_params([], page_size=1,
                                                                    current_page=1))
        assert answer.status_code == 200
        assert served.fake.token_requests == 2


def test_wrong_admin_password_is_a_vendor_error_without_the_password(
    magento: Callable[..., Served],
) -> None:
    served = magento(customers=1)
    with (
        served.client(admin_password="wrong-pass-123") as client,
        pytest.raises(VendorError) as caught,
    ):
        client.get("customers/search", params={})
    assert caught.value.status == 401
    assert "sign-in was incorrect" in str(caught.value)
    assert "wrong-pass-123" not in str(caught.value)
    assert served.fake.token_requests == 1


def test_integration_token_as_bearer(magento: Callable[..., Served]) -> None:
    served = magento(customers=2)
    kw = {"admin_username": None, "admin_password": None}
    with served.client(access_token=served.fake.integration_token, **kw) as client:
        assert client.get("customers/search", params={}).json()["total_count"] == 2
    with (
        served.client(access_token="not-enabled-as-bearer", **kw) as client,
        pytest.raises(VendorError) as caught,
    ):
        client.get("customers/search", params={})
    assert caught.value.status == 401
    assert UNAUTHORIZED["message"] in caught.value.detail
    assert served.fake.token_requests == 0


def test_unknown_store_code(magento: Callable[..., Served]) -> None:
    served = magento(customers=1)
    with served.client(store_code="nowhere") as client, pytest.raises(VendorError) as caught:
        client.get("customers/search", params={})
    assert caught.value.status == 400


def test_fake_repeats_the_last_page_out_of_range(magento: Callable[..., Served]) -> None:
    """Why we stop on total_count: Magento answers currentPage 9 of 3 with page 3."""
    served = magento(customers=25)
    with served.client() as client:
        def page(n: int) -> list[int]:
            params = search_criteria_params([], page_size=10, current_page=n,
                                            sort=[("entity_id", "ASC")])
            answer = client.get("customers/search", params=params).json()
            assert answer["total_count"] == 25
            return [r["id"] for r in answer["items"]]

        assert page(3) == [21, 22, 23, 24, 25]
        assert page(9) == page(3)


def test_fake_filters_groups_and_or_and_refuses_id(magento: Callable[..., Served]) -> None:
    served = magento(customers=12)
    with served.client() as client:
        params = search_criteria_params(
            [[("email", "customer1%", "like")],
             [("entity_id", "3", "lteq"), ("entity_id", "11", "gteq")]],
            page_size=50, current_page=1, sort=[("entity_id", "DESC")],
        )
        ids = [r["id"] for r in client.get("customers/search", params=params).json()["items"]]
        assert ids == [12, 11, 1]
        bad = search_criteria_params([[("id", "1", "eq")]], page_size=5, current_page=1)
        with pytest.raises(VendorError) as caught:
            client.get("customers/search", params=bad)
        assert caught.value.status == 400


def test_page_params_keyset() -> None:
    params = page_params(STREAMS["orders"], Cursor("2024-01-02 03:04:05", 17))
    prefix = "searchCriteria[filterGroups]"
    assert params[f"{prefix}[0][filters][0][field]"] == "updated_at"
    assert params[f"{prefix}[0][filters][0][conditionType]"] == "gteq"
    assert params[f"{prefix}[1][filters][0][conditionType]"] == "gt"
    assert params[f"{prefix}[1][filters][1][field]"] == "entity_id"
    assert params[f"{prefix}[1][filters][1][value]"] == "17"
    assert params["searchCriteria[sortOrders][0][field]"] == "updated_at"
    assert params["searchCriteria[sortOrders][1][field]"] == "entity_id"
    assert params["searchCriteria[currentPage]"] == "1"
    assert params["searchCriteria[pageSize]"] == "100"
    first = page_params(STREAMS["customers"], None)
    assert not any(k.startswith(prefix) for k in first)


def test_httpx_is_what_the_fake_answers_with(magento: Callable[..., Served]) -> None:
    served = magento(customers=1)
    token = httpx.post(f"{served.url}/rest/V1/integration/admin/token",
                       json={"username": "api-admin", "password": "s3cret-pass"})
    assert token.status_code == 200 and isinstance(token.json(), str)
