"""gunicorn settings for ``dr-panel serve`` (read by gunicorn, not imported by the app).

Every value comes from the environment with a default for one machine behind nginx:
``DR_PANEL_BIND`` (127.0.0.1:8000), ``WEB_CONCURRENCY`` processes (1; dr_panel.throttling and
config.serving_problem read the same variable, so the app refuses what gunicorn would run
unsafely), ``DR_PANEL_THREADS`` threads each (4), ``DR_PANEL_TIMEOUT`` seconds (60).

No gunicorn access log: the app writes one line per request itself (dr_panel.runtime.web),
with a request id and a path whose non-UUID segments are replaced by their names. If you turn
gunicorn's on (``--access-logfile -``), the format below carries no query string and no path
(a password link's token travels in its path).
"""

import os

bind = os.environ.get("DR_PANEL_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "1") or 1)
worker_class = "gthread"
threads = int(os.environ.get("DR_PANEL_THREADS", "4") or 4)
timeout = int(os.environ.get("DR_PANEL_TIMEOUT", "60") or 60)  # a trend extract can take a while
graceful_timeout = 30  # a stopping worker finishes the requests it has
keepalive = 5  # behind nginx's keep-alive upstream connections
max_requests = 2000  # recycle workers now and then, so a slow leak never grows
max_requests_jitter = 200
limit_request_line = 8190
limit_request_fields = 100

accesslog = None
access_log_format = '%(h)s "%(m)s" %(s)s %(B)s %(M)sms'
errorlog = "-"
loglevel = os.environ.get("DR_PANEL_LOG_LEVEL", "info").lower()

# The proxy's X-Forwarded-* headers are the app's business (ProxyFix with PROXY_TRUSTED_HOPS):
# gunicorn must not also rewrite the scheme from them.
secure_scheme_headers: dict[str, str] = {}
forwarded_allow_ips = "127.0.0.1"
proc_name = "dr-panel"
