"""Serve messenger.js (classic and ES-module flavours) and each workspace's public settings.

Both are public and carry nothing about any user, so they are cacheable by
anyone and readable from any origin: `Access-Control-Allow-Origin: *` is what
lets a product page on another origin load the script with `integrity` (SRI
needs a CORS-readable response) or import the module. No credentials are
ever involved, so the wildcard grants nothing.
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from identity_service.frontend.public_config import MessengerConfig
from identity_service.frontend.script import messenger_js, messenger_module, sri_sha384
from identity_service.http.paths import CONFIG_PATH, MODULE_PATH, SCRIPT_PATH, TOKEN_PATH
from identity_service.http.state import service_state

bp = Blueprint("messenger_static", __name__)

# The URL is not versioned, so a long max-age would keep an old script alive
# for a day after an upgrade; an hour plus ETag revalidation is cheap.
SCRIPT_MAX_AGE = 3600
CONFIG_MAX_AGE = 300


def _public(response: Response, max_age: int) -> Response:
    response.cache_control.public = True
    response.cache_control.max_age = max_age
    response.headers["Access-Control-Allow-Origin"] = "*"
    # Pages with Cross-Origin-Embedder-Policy may only load what opts in.
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def _script(body: bytes) -> WerkzeugResponse:
    response = Response(body, mimetype="text/javascript")  # Flask adds "; charset=utf-8"
    # Strong ETag from the bytes: identical content on every instance and release.
    response.set_etag(hashlib.sha256(body).hexdigest(), weak=False)
    _public(response, SCRIPT_MAX_AGE)
    # 304 with no body when If-None-Match holds the current ETag.
    return response.make_conditional(request)


@bp.get(SCRIPT_PATH)
def script() -> WerkzeugResponse:
    """messenger.js as a classic script (global `IdentityServiceMessenger`)."""
    return _script(messenger_js())


@bp.get(MODULE_PATH)
def module() -> WerkzeugResponse:
    """The same code as an ES module (`import {startMessenger} from ".../messenger.mjs"`)."""
    return _script(messenger_module())


@bp.get(CONFIG_PATH)
def config() -> Response:
    """Public, non-secret Messenger settings of one workspace (`?workspace=`, else the default)."""
    settings = service_state(current_app).settings
    workspace = settings.workspace(request.args.get("workspace") or None)  # unknown -> 404
    # Origin-relative paths, resolved against this service's origin (where config.json
    # was fetched from). Never absolute: those would come from the request's Host or
    # X-Forwarded-Host, and this public, cached response could then point a shared
    # cache's every reader at whatever host one request named.
    # The token endpoint is not a Flask view (http/api.py): its path, under this app's root.
    token_url = request.script_root + TOKEN_PATH
    body = MessengerConfig.for_workspace(workspace, token_url).as_json()
    body["script_url"] = url_for(".script")
    body["module_url"] = url_for(".module")
    body["integrity"] = sri_sha384(messenger_js())
    body["module_integrity"] = sri_sha384(messenger_module())
    return _public(jsonify(body), CONFIG_MAX_AGE)
