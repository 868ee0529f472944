"""The naive baseline: 20 lines of Flask + pyjwt doing the same verify and sign, no validation."""

import os
import time

import jwt
from flask import Flask, request

app = Flask(__name__)
PUBLIC_PEM = open(os.environ["BENCH_IDP_PEM"]).read()  # noqa: SIM115 (read once at import)
SECRET = os.environ["BENCH_MESSENGER_SECRET"]
ISSUER, AUDIENCE = os.environ["BENCH_ISSUER"], os.environ["BENCH_AUDIENCE"]


@app.post("/v1/messenger/token")
def token() -> dict[str, object]:
    bearer = request.headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(bearer, PUBLIC_PEM, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)
    attrs = {k: v for k, v in claims.items() if k.startswith("attr_")}
    now = int(time.time())
    payload = {"user_id": claims["sub"], "iat": now, "exp": now + 3600, **attrs}
    return {"token": jwt.encode(payload, SECRET, algorithm="HS256"), "expires_at": now + 3600}
