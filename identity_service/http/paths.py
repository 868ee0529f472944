"""The URL paths a product's pages call, written once and free of Flask.

The blueprints route them; the front end (snippets, the Jinja helper, the
CLI) writes them into pages without importing the HTTP layer's Flask code.
"""

from __future__ import annotations

TOKEN_PATH = "/v1/messenger/token"
SCRIPT_PATH = "/v1/messenger/messenger.js"
MODULE_PATH = "/v1/messenger/messenger.mjs"
CONFIG_PATH = "/v1/messenger/config.json"
