"""messenger.js as shipped: the classic script, its ES-module flavour and their hashes.

The bytes are read from the package once; the Subresource Integrity value
pins them in every embed, and the CSP hash source allows an inline script.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from importlib import resources

SCRIPT_NAME = "messenger.js"
MODULE_NAME = "messenger.mjs"

# The ES-module flavour is messenger.js plus these exports, so one source file
# serves both ways and an `integrity` on the module covers all of its code
# (a module that imported messenger.js would leave that import unpinned).
MODULE_FOOTER = b"""
const api = globalThis.IdentityServiceMessenger;
export const startMessenger = api.startMessenger;
export const installGuard = api.installGuard;
export default api;
"""


@cache
def messenger_js() -> bytes:
    """The classic-script flavour of messenger.js, as shipped in the package."""
    return resources.files("identity_service.frontend").joinpath("static", SCRIPT_NAME).read_bytes()


@cache
def messenger_module() -> bytes:
    """The ES-module flavour: messenger.js plus named and default exports."""
    return messenger_js() + MODULE_FOOTER


def sri_sha384(data: bytes) -> str:
    """Subresource Integrity value (`sha384-<base64>`) of `data`."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


def messenger_integrity() -> str:
    """The `integrity` attribute for the shipped messenger.js."""
    return sri_sha384(messenger_js())


def csp_hash_source(script: str) -> str:
    """The CSP source (`'sha256-<base64>'`, quotes included) allowing this inline script text."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"
