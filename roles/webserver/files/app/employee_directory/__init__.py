"""Employee directory: a small WSGI application backed by SQLite.

It runs on the Python standard library alone (plus gunicorn as the server),
so Debian's own packages are all a host needs.
"""

__version__ = "1.0.0"
