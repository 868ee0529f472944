"""Intercom's REST API facts this package relies on, written once.

Kept here until identity_service/intercom.py (Intercom's rules, being written
on another branch) lands; then these move there. Sources: Intercom's REST API
reference (Data Attributes, Rate Limiting, Errors) and the 2.11 changelog;
see docs/intercom-admin.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from identity_service.settings import AttributeType

# The REST hosts by region; not the Messenger's api-iam hosts (settings.REGIONS).
REST_BASES: Mapping[str, str] = {
    "us": "https://api.intercom.io",
    "eu": "https://api.eu.intercom.io",
    "au": "https://api.au.intercom.io",
}

# The version sent in every request's Intercom-Version header, and tested against: the
# first with `messenger_writable` on data attributes (the admin's "Prevent updates via
# the Messenger"), and in which a CDA created through the API defaults to false.
API_VERSION = "2.11"

# Our whitelist's types against Intercom's data_type values.
DATA_TYPES: Mapping[AttributeType, str] = {
    "string": "string",
    "integer": "integer",
    "number": "float",
    "boolean": "boolean",
    "date": "date",
}

# Where an admin finds the contact attributes in Intercom.
PEOPLE_DATA_SETTINGS = "Settings > Data > People"
