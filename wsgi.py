"""WSGI entry point for any server: `gunicorn wsgi:app`."""

from identity_service import create_app
from identity_service.observability.logs import configure_logging

configure_logging()
app = create_app()
