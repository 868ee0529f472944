"""What one Messenger token costs, next to its floor (one HMAC) and to pyjwt.

Times, in one run and on the same payload:

- `clean + mint`: `AttributePolicy.clean` of a raw profile (10 whitelisted
  attributes of every type, plus keys that are not whitelisted) and
  `tokens.mint`, i.e. everything the token endpoint does after authentication;
- `mint` alone, on attributes that are already clean;
- `clean` alone;
- `hmac.digest`: the bare HMAC-SHA256 of the same signing input (the floor);
- `jwt.encode`: pyjwt signing the same payload.

Each figure is the best of `--repeat` timeit runs (the least disturbed one),
divided by the loop count timeit's autorange picks. Run:
`.venv/bin/python bench/mint_cost.py`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import platform
import secrets
import sys
import timeit
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jwt

from identity_service.attributes import AttributePolicy
from identity_service.secrets import SecretSource
from identity_service.settings import AttributeSpec, WorkspaceSettings
from identity_service.tokens import mint

NOW = 1_700_000_000
SECRET_ENV = "BENCH_MESSENGER_SECRET"
SPECS = (
    AttributeSpec("email", "string"),
    AttributeSpec("name", "string"),
    AttributeSpec("plan", "string"),
    AttributeSpec("company", "string"),
    AttributeSpec("teammates", "integer"),
    AttributeSpec("seats", "integer"),
    AttributeSpec("score", "number"),
    AttributeSpec("beta", "boolean"),
    AttributeSpec("created_at", "date"),
    AttributeSpec("last_order_at", "date"),
)
RAW: dict[str, Any] = {
    "email": "zoe@example.com",
    "name": "Zoë Example",
    "plan": "enterprise",
    "company": "Example Corp",
    "teammates": 12,
    "seats": 50,
    "score": 0.875,
    "beta": True,
    "created_at": 1_600_000_000,
    "last_order_at": "2024-05-01T12:00:00+02:00",
    # not whitelisted: ignored
    "password_hash": "not-copied",
    "roles": ["admin"],
}


def per_op_us(fn: Callable[[], object], repeat: int) -> float:
    """Best-of-`repeat` time of one call, in microseconds."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=7, help="timeit repeats (best is kept)")
    args = parser.parse_args()

    secret_text = secrets.token_urlsafe(48)
    os.environ[SECRET_ENV] = secret_text
    secret = secret_text.encode()
    workspace = WorkspaceSettings(
        key="bench",
        app_id="bench1",
        api_base="https://api-iam.intercom.io",
        secret=SecretSource("env", SECRET_ENV, "bench Messenger secret"),
        attributes=SPECS,
    )
    policy = AttributePolicy(SPECS, "drop")
    clean = policy.clean(RAW)
    assert len(clean.values) == 10
    assert not clean.dropped

    def clean_and_mint() -> object:
        attributes = policy.clean(RAW)
        return mint("user-42", attributes.values, workspace, NOW, attributes.warnings)

    def mint_only() -> object:
        return mint("user-42", clean.values, workspace, NOW)

    def clean_only() -> object:
        return policy.clean(RAW)

    token = mint("user-42", clean.values, workspace, NOW).token
    signing_input = token.rsplit(".", 1)[0].encode()
    body = token.split(".")[1]
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    # Same bytes to sign, same signature: the comparison is like for like.
    assert hmac.digest(secret, signing_input, hashlib.sha256) == base64.urlsafe_b64decode(
        token.split(".")[2] + "="
    )
    jwt.decode(token, secret, algorithms=["HS256"], options={"verify_exp": False})

    def bare_hmac() -> object:
        return hmac.digest(secret, signing_input, hashlib.sha256)

    def bare_pyjwt() -> object:
        return jwt.encode(payload, secret, algorithm="HS256")

    cases = [
        ("clean + mint (10 attributes)", clean_and_mint),
        ("mint only (pre-cleaned)", mint_only),
        ("AttributePolicy.clean only", clean_only),
        ("hmac.digest (same signing input)", bare_hmac),
        ("jwt.encode (same payload, pyjwt)", bare_pyjwt),
    ]
    results = {name: per_op_us(fn, args.repeat) for name, fn in cases}
    floor = results["hmac.digest (same signing input)"]
    pyjwt_cost = results["jwt.encode (same payload, pyjwt)"]

    print(
        f"Python {platform.python_version()}, pyjwt {version('pyjwt')}, "
        f"marshmallow {version('marshmallow')}; best of {args.repeat} timeit repeats"
    )
    print(f"token: {len(token)} bytes, payload: {len(payload)} claims")
    print(f"{'operation':<34} {'us/op':>9} {'x hmac':>8} {'x jwt.encode':>13}")
    for name, cost in results.items():
        print(f"{name:<34} {cost:>9.2f} {cost / floor:>8.1f} {cost / pyjwt_cost:>13.2f}")


if __name__ == "__main__":
    main()
