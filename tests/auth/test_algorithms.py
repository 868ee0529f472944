"""auth/algorithms.py: the one table of IdP algorithms and the key type each needs."""

from __future__ import annotations

import jwt
import pytest
from jwt.algorithms import HMACAlgorithm

from identity_service.auth.algorithms import (
    EC_CURVES,
    IDP_ALGORITHMS,
    KEY_TYPES,
    algorithms_of,
)


@pytest.mark.parametrize("name", sorted(IDP_ALGORITHMS))
def test_every_idp_algorithm_is_asymmetric_and_known_to_pyjwt(name: str) -> None:
    algorithm = jwt.get_algorithm_by_name(name)
    assert not isinstance(algorithm, HMACAlgorithm)
    assert name != "none"


def test_the_key_types_partition_the_algorithms() -> None:
    by_type = [algorithms_of(kty) for kty in ("RSA", "EC", "OKP")]
    assert frozenset().union(*by_type) == IDP_ALGORITHMS == frozenset(KEY_TYPES)
    assert sum(len(algs) for algs in by_type) == len(IDP_ALGORITHMS)
    assert algorithms_of("EC") == frozenset(EC_CURVES.values())
    assert algorithms_of("OKP") == {"EdDSA"}
