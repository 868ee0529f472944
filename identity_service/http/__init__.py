"""The HTTP layer: the Flask app, its routes, problem answers and the gunicorn server."""
