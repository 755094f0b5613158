"""One RSA key pair for the module's tests (generating one costs a moment)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.google_sheets import new_key


@pytest.fixture(scope="session")
def key() -> rsa.RSAPrivateKey:
    return new_key()
