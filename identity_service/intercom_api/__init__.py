"""The Intercom REST side: prove, through the Data Attributes API, that each signed CDA is
protected (exists, has its type, `messenger_writable: false`), and set that up.

client (HTTP, deadlines, errors), models (the API's data attribute), check (findings),
sync (plan and apply), startup (the check `serve` runs once). No Flask here.
"""
