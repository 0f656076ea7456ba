"""The WSGI application: one directory's settings and route table, /healthz, and what pages and API share.

Its parts: HTTP plumbing (http_plumbing.py), the HTML pages (page_handlers.py) and the JSON API (api_handlers.py).
"""

import http
import json
import logging
import os
import re
import socket
import threading
import time

from . import __version__, pages
from .api_handlers import Api
from .auth import SESSION_COOKIE, Admin
from .csrf import Csrf, load_or_create_secret
from .http_plumbing import HTTPError, Request, Response, find_route, json_response, send
from .images import HEIC_MEDIA_TYPES, HEIC_REFUSED, PhotoError, detect_image_type, is_heif, shrink
from .metadata import InstanceMetadata
from .page_handlers import Pages
from .store import open_store
from .store_common import StoreUnavailable

_STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
# Room for the text fields and multipart framing around a photo of the maximum size.
FORM_OVERHEAD = 64 * 1024
log = logging.getLogger("employee_directory")

DEFAULTS = {
    "title": "Employee Directory",
    "database": "/var/lib/employee-directory/directory.sqlite3",
    "secret_file": "/var/lib/employee-directory/csrf-secret",
    "admin_password_file": "/etc/employee-directory/admin-password",
    "page_size": 24,
    "upload_max_bytes": 10 * 1024 * 1024,
    # Photos are shrunk to at most this many pixels a side.
    "photo_max_px": 512,
    "metadata_url": "http://169.254.169.254",
    "metadata_timeout": 1.0,
    # /healthz asks the store at most this often (seconds) and answers from that result in between: a load
    # balancer's checks then cost no read per check and node.
    "store_check_seconds": 15,
    "seed": [],
    # sqlite (one file on this host) or dynamodb (a DynamoDB table and an S3 bucket shared by every clone).
    "store": "sqlite",
    "dynamodb_table": "",
    "s3_bucket": "",
    "aws_region": "",
    # Only for the sandbox: empty means AWS's own endpoints.
    "aws_endpoint_url": "",
}


class Application(Pages, Api):
    """One directory: its store, settings, CSRF secret, administrator and metadata client."""

    def __init__(self, config=None):
        settings = dict(DEFAULTS)
        settings.update(config or {})
        self.settings = settings
        self.title = settings["title"]
        self.upload_max_bytes = int(settings["upload_max_bytes"])
        self.form_max_bytes = self.upload_max_bytes + FORM_OVERHEAD
        self.photo_max_px = int(settings["photo_max_px"])
        self.page_size = int(settings["page_size"])
        self.store_check_seconds = float(settings["store_check_seconds"])
        self.clock = time.monotonic
        self._store_checked = (None, None)  # (when, (employees or None, StoreUnavailable or None))
        self._store_check_lock = threading.Lock()
        self.store = open_store(settings)
        self.seed = settings["seed"]
        self._ready = False
        self._ready_lock = threading.Lock()
        try:
            self.ensure_ready()
        except StoreUnavailable as exc:
            # Serve 503 (and /healthz says why) until the store answers; an invalid seed still stops the app.
            log.error("store unavailable at start: %s", exc)
        self.csrf = Csrf(load_or_create_secret(settings["secret_file"]))
        self.admin = Admin(self.store, settings["admin_password_file"])
        self.metadata = InstanceMetadata(settings["metadata_url"], timeout=float(settings["metadata_timeout"]))
        self.hostname = socket.gethostname()
        self.routes = [
            (re.compile(r"/"), {"GET": self.list_page}),
            (re.compile(r"/healthz"), {"GET": self.healthz}),
            (re.compile(r"/static/(style\.css|form\.js)"), {"GET": self.static}),
            (re.compile(r"/signin"), {"GET": self.signin_page, "POST": self.signin}),
            (re.compile(r"/signout"), {"POST": self.signout}),
            (re.compile(r"/employees"), {"POST": self.create_page}),
            (re.compile(r"/employees/new"), {"GET": self.new_page}),
            (re.compile(r"/employees/(\d+)"), {"GET": self.detail_page, "POST": self.update_page}),
            (re.compile(r"/employees/(\d+)/edit"), {"GET": self.edit_page}),
            (re.compile(r"/employees/(\d+)/delete"), {"GET": self.delete_confirm_page, "POST": self.delete_page}),
            (re.compile(r"/employees/(\d+)/photo"), {"GET": self.photo}),
            (re.compile(r"/api/employees"), {"GET": self.api_list, "POST": self.api_create}),
            (
                re.compile(r"/api/employees/(\d+)"),
                {
                    "GET": self.api_get,
                    "PUT": self.api_replace,
                    "PATCH": self.api_patch,
                    "DELETE": self.api_delete,
                },
            ),
            (
                re.compile(r"/api/employees/(\d+)/photo"),
                {"GET": self.photo, "PUT": self.api_put_photo, "DELETE": self.api_delete_photo},
            ),
        ]

    # -- WSGI -------------------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except HTTPError as error:
            response = self.error_response(request, error)
        except StoreUnavailable as exc:
            log.error("store unavailable: %s %s: %s", request.method, request.path, exc)
            response = self.error_response(request, HTTPError(503, _UNAVAILABLE, [("Retry-After", "10")]))
        return send(request, response, start_response)

    def ensure_ready(self):
        """Load the seed once the store answers (at start, or at the first request after an outage)."""
        if self._ready:
            return
        with self._ready_lock:
            if not self._ready:
                self.store.initialise(self.seed)
                self._ready = True

    def dispatch(self, request):
        # /healthz reports the store itself; the style sheet and script must style the error page of an outage.
        if request.path != "/healthz" and not request.path.startswith("/static/"):
            self.ensure_ready()
            request.admin = self.admin.session_valid(request.cookies.get(SESSION_COOKIE))
        handler, method, arguments = find_route(self.routes, request)
        if getattr(handler, "needs_admin", False):
            if request.path.startswith("/api/"):
                self.require_basic(request)
            elif not request.admin:
                return self.not_signed_in(request, method)
        return handler(request, *arguments)

    def error_response(self, request, error):
        if request.path.startswith("/api/") or request.path == "/healthz":
            data = {"error": error.message}
            if error.fields:
                data["fields"] = error.fields
            return json_response(data, error.status, error.headers)
        phrase = http.HTTPStatus(error.status).phrase
        return Response(
            pages.error_page(self.site(request), error.status, phrase, error.message),
            error.status,
            headers=error.headers,
        )

    # -- what pages and the API share; /healthz, static files, photos -----------------------------------

    def check_rate(self, request):
        wait = self.admin.retry_after(request.client)
        if wait:
            minutes = -(-wait // 60)
            raise HTTPError(
                429,
                f"Too many failed sign-ins from your address: try again in {_plural(minutes, 'minute')}.",
                [("Retry-After", str(wait))],
            )

    def checked_photo(self, data, declared_type=None):
        """(bytes, media type) of an acceptable photo, shrunk and re-encoded; HTTPError 413/415/422 otherwise."""
        if len(data) > self.upload_max_bytes:
            raise HTTPError(413, f"Photo too large: the limit is {pages.human_size(self.upload_max_bytes)}.")
        if is_heif(data) or declared_type in HEIC_MEDIA_TYPES:
            raise HTTPError(415, HEIC_REFUSED)
        detected = detect_image_type(data)
        if detected is None or (declared_type and declared_type != detected):
            raise HTTPError(415, "Photos must be JPEG, PNG, GIF or WebP images.")
        try:
            return shrink(data, self.photo_max_px)
        except PhotoError as exc:
            raise HTTPError(422, str(exc)) from exc

    def employee_or_404(self, employee_id):
        employee = self.store.get(employee_id)
        if employee is None:
            raise HTTPError(404, f"No employee has ID {employee_id}.")
        return employee

    def photo(self, request, employee_id):
        found = self.store.photo(employee_id)
        if found is None:
            self.employee_or_404(employee_id)
            raise HTTPError(404, f"Employee {employee_id} has no photo.")
        data, media_type = found
        return Response(data, 200, media_type, [("Cache-Control", "no-cache")])

    def static(self, request, name):
        media_type = "text/css; charset=utf-8" if name.endswith(".css") else "text/javascript; charset=utf-8"
        with open(os.path.join(_STATIC, name), "rb") as handle:
            return Response(handle.read(), 200, media_type, [("Cache-Control", "max-age=3600")])

    def healthz(self, request):
        data = {"status": "ok", "version": __version__, "hostname": self.hostname, "store": self.store.kind}
        data.update(self.metadata.get())
        status = 200
        employees, failure = self.store_health()
        if failure is None:
            data["employees"] = employees
        else:
            data.update(status="error", error="The store does not answer; the reason is in the app's log.")
            status = 503
        return json_response(data, status, [("Cache-Control", "no-store")])

    def store_health(self):
        """(employees, None) or (None, the StoreUnavailable): the store asked at most every store_check_seconds."""
        with self._store_check_lock:
            checked_at, result = self._store_checked
            now = self.clock()
            if checked_at is None or now - checked_at >= self.store_check_seconds:
                try:
                    self.ensure_ready()
                    result = (self.store.health(), None)
                except StoreUnavailable as exc:
                    # The reason (names of the table, bucket or file, the error code) goes to the log, not to visitors.
                    log.error("healthz: store unavailable: %s", exc)
                    result = (None, exc)
                self._store_checked = (now, result)
            return result


_UNAVAILABLE = "The directory cannot reach its data right now. Please try again in a minute."


def _plural(count, word):
    return f"{count} {word}{'' if count == 1 else 's'}"


def load_config(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
