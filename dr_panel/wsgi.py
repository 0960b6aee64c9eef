"""The WSGI entry point gunicorn loads (``dr-panel serve``): one app per worker process, built
after the fork, so no database connection or key ring is shared between processes."""

from dr_panel import create_app

app = create_app()
