"""Operations endpoints: liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from identity_service.auth.session import SessionAuthenticator
from identity_service.errors import SecretUnavailableError
from identity_service.http.openapi import build_openapi
from identity_service.http.problems import view_problem
from identity_service.http.reloading import REFUSED_CONFIG
from identity_service.http.state import service_state
from identity_service.observability.metrics import exposition
from identity_service.runtime import Runtime

bp = Blueprint("health", __name__)


def current_runtime() -> Runtime:
    """The running app's live objects (settings, authenticators, metrics...)."""
    return service_state(current_app).runtime


def start_draining(app: Flask) -> None:
    """From now on `/readyz` answers 503: the server is shutting down (SIGTERM).

    A client on a kept-alive connection can still ask while in-flight
    requests finish; a load balancer polling it takes the instance out of
    rotation before its health checks could time out.
    """
    service_state(app).draining.set()


def package_version() -> str:
    try:
        return version("identity_service")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0.0.0"


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up and answering."""
    return jsonify({"status": "ok"})


# Serving, but on a last good value: a refused configuration reload, or a
# secret whose file is refused now. Ready (200), with status "degraded".
REFUSED = "refused"


@bp.get("/readyz")
def readyz() -> Response:
    """Ready to mint: every secret readable, IdP keys cached or fetchable, profile DB reachable."""
    if service_state(current_app).draining.is_set():
        # Before any dependency check: nothing they say changes the answer.
        return view_problem(
            503,
            "Not ready",
            "unavailable: the server is shutting down",
            "not-ready",
            extra={"checks": {"server": "draining"}},
        )
    runtime = current_runtime()
    checks: dict[str, str] = {}
    if REFUSED_CONFIG in current_app.config:  # under `identity-service serve`
        checks["config"] = REFUSED if current_app.config[REFUSED_CONFIG] else "ok"
    for key, workspace in runtime.settings.workspaces.items():
        for platform, secret in workspace.secrets.items():
            # web keeps its old name (`<key>.secret`): dashboards and probes read it.
            name = f"{key}.secret" if platform == "web" else f"{key}.{platform}.secret"
            try:
                secret.get()
                checks[name] = REFUSED if secret.refused else "ok"
            except SecretUnavailableError:
                checks[name] = "unavailable"
        for index, authenticator in enumerate(runtime.authenticators[key]):
            name = f"{key}.auth[{index}]"
            if isinstance(authenticator, SessionAuthenticator):
                checks[name] = REFUSED if authenticator.refused() else "ok"
                continue
            ready = getattr(authenticator, "ready", None)
            if ready is not None:
                checks[name] = "ok" if ready() else "unavailable"
        profile = runtime.profiles.get(key)
        if profile is not None:
            checks[f"{key}.profile"] = "ok" if profile.ready() else "unavailable"
    if runtime.settings.service.rate_limit.storage_url != "memory://":
        checks["rate_limit.storage"] = "ok" if runtime.limiter.ready() else "unavailable"
    failed = sorted(name for name, state in checks.items() if state not in ("ok", REFUSED))
    if failed:
        return view_problem(
            503,
            "Not ready",
            f"unavailable: {', '.join(failed)}",
            "not-ready",
            extra={"checks": checks},
        )
    degraded = REFUSED in checks.values()
    return jsonify({"status": "degraded" if degraded else "ready", "checks": checks})


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics of this process."""
    body = generate_latest(exposition() or current_runtime().metrics.registry)
    return Response(
        body, mimetype=CONTENT_TYPE_LATEST.split(";")[0], content_type=CONTENT_TYPE_LATEST
    )


@functools.cache
def _openapi_document() -> dict[str, Any]:
    return build_openapi(package_version())  # the schemas are fixed: build it once


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 description of this API."""
    return jsonify(_openapi_document())
