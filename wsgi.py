"""WSGI entry point for any server: `gunicorn wsgi:app`."""

from identity_service import create_app

app = create_app()
