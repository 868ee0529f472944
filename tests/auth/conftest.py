"""Fixtures shared by the bearer and JWKS tests: the IdP's key and its real JWKS endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.jwks_server import JWKSServer, running
from tests.support.keys import SigningKey, rsa_key


@pytest.fixture
def idp() -> SigningKey:
    return rsa_key("idp-1")


@pytest.fixture
def server(idp: SigningKey) -> Iterator[JWKSServer]:
    with running(idp) as jwks_server:
        yield jwks_server
