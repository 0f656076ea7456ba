"""The WSGI application: HTML pages, the JSON API and /healthz."""

import base64
import contextlib
import hashlib
import http
import http.cookies
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.parse

from . import __version__, pages
from .auth import SESSION_COOKIE, USER, WINDOW_SECONDS, Admin
from .csrf import COOKIE, FIELD, Csrf, load_or_create_secret
from .forms import FormError, parse_form
from .images import ALLOWED_TYPES, HEIC_MEDIA_TYPES, HEIC_REFUSED, PhotoError, detect_image_type, is_heif, shrink
from .metadata import InstanceMetadata
from .store import open_store
from .store_common import DuplicateEmail, StoreUnavailable
from .validation import FIELDS, clean_employee

_STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
_JSON_BODY_LIMIT = 64 * 1024
# Room for the text fields and multipart framing around a photo of the maximum size.
FORM_OVERHEAD = 64 * 1024
FLASH_COOKIE = "edir_flash"
# What a form held when it met an ended session, until the form is shown again after sign-in (sealed JSON).
DRAFT_COOKIE = "edir_draft"
DRAFT_SECONDS = 15 * 60
# Each form page carries a one-time token: the same form sent twice (a double click, a slow network, Back
# and send again) gets the first sending's answer, and changes nothing more. Kept this long.
FORM_TOKEN = "form_token"  # noqa: S105 (the name of a form field)
FORM_TOKEN_SECONDS = 24 * 3600
_FORM_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")
# How long a second sending waits for the first one's answer.
_FORM_WAIT_SECONDS = 10
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
# The most employees one page of GET /api/employees?limit=N gives.
_API_PAGE_MAX = 1000
_READ_ONLY = ("id", "has_photo", "photo_url", "url", "created_at", "updated_at")
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


class HTTPError(Exception):
    def __init__(self, status, message, headers=None, fields=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []
        self.fields = fields


class Response:
    def __init__(self, body=b"", status=200, content_type="text/html; charset=utf-8", headers=None):
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.status = status
        self.headers = [("Content-Type", content_type)] if content_type else []
        self.headers.extend(headers or [])
        # A message for the next page the browser shows ("Employee saved."), carried in a cookie.
        self.flash = None


def json_response(data, status=200, headers=None):
    body = json.dumps(data, indent=1, sort_keys=True) + "\n" if data is not None else b""
    return Response(body, status, "application/json" if data is not None else None, headers)


def redirect(location, flash=None):
    response = Response(b"", 303, None, [("Location", location)])
    response.flash = flash
    return response


def _cookie(name, value, request, max_age=None, same_site="Lax"):
    parts = [f"{name}={value}", "Path=/", "HttpOnly", f"SameSite={same_site}"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if request.https:
        parts.append("Secure")
    return ("Set-Cookie", "; ".join(parts))


def _local_path(target):
    """``target`` when it is a path on this site, else "/" (no open redirect after sign-in)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target and not _CONTROL.search(target):
        return target
    return "/"


def needs_admin(handler):
    """Mark a handler as a change: the administrator must be signed in (pages) or authenticated (API)."""
    handler.needs_admin = True
    return handler


class Request:
    def __init__(self, environ):
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        # WSGI hands the path over as latin-1 decoded bytes.
        self.path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace") or "/"
        self.query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        self.content_type = environ.get("CONTENT_TYPE", "")
        cookies = http.cookies.SimpleCookie()
        with contextlib.suppress(http.cookies.CookieError):
            cookies.load(environ.get("HTTP_COOKIE", ""))
        self.cookies = {name: morsel.value for name, morsel in cookies.items()}
        # Set when this response must give the browser its first CSRF nonce.
        self.new_nonce = None
        # gunicorn listens on loopback only: there, nginx tells who the client is and how it came.
        remote = environ.get("REMOTE_ADDR", "")
        behind_proxy = remote.startswith("127.") or remote == "::1"
        self.client = (behind_proxy and environ.get("HTTP_X_REAL_IP")) or remote or "unknown"
        scheme = (behind_proxy and environ.get("HTTP_X_FORWARDED_PROTO")) or environ.get("wsgi.url_scheme", "http")
        self.https = scheme.lower() == "https"
        self.flash = urllib.parse.unquote(self.cookies.get(FLASH_COOKIE, ""))
        self.flash_shown = False
        self.admin = False

    @property
    def media_type(self):
        return self.content_type.split(";", 1)[0].strip().lower()

    def body(self, limit):
        """The request body, refused with 413 above ``limit`` bytes before it is read."""
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or -1)
        except ValueError as exc:
            raise HTTPError(400, "Content-Length is not a number.") from exc
        if length > limit:
            raise HTTPError(413, f"Request body too large: the limit is {limit} bytes.")
        stream = self.environ["wsgi.input"]
        data = stream.read(length) if length >= 0 else stream.read(limit + 1)
        if len(data) > limit:
            raise HTTPError(413, f"Request body too large: the limit is {limit} bytes.")
        return data


def _employee_json(employee):
    data = dict(employee)
    data["photo_url"] = f"/employees/{employee['id']}/photo" if employee["has_photo"] else None
    data["url"] = f"/api/employees/{employee['id']}"
    return data


def _validation_error(errors):
    return HTTPError(422, "Validation failed: " + " ".join(errors.values()), fields=errors)


def _duplicate(email):
    return HTTPError(409, f"An employee with email {email} already exists.", fields={"email": "Already in use."})


class Application:
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
        if request.new_nonce:
            response.headers.append(_cookie(COOKIE, request.new_nonce, request, same_site="Strict"))
        if response.flash:
            response.headers.append(_cookie(FLASH_COOKIE, urllib.parse.quote(response.flash), request, 60))
        elif request.flash_shown:
            response.headers.append(_cookie(FLASH_COOKIE, "", request, 0))
        if request.https:  # browsers then never come back over plain HTTP (a year)
            response.headers.append(("Strict-Transport-Security", "max-age=31536000"))
        response.headers.append(("Content-Length", str(len(response.body))))
        status = f"{response.status} {http.HTTPStatus(response.status).phrase}"
        start_response(status, response.headers)
        return [b"" if request.method == "HEAD" else response.body]

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
        for pattern, handlers in self.routes:
            match = pattern.fullmatch(request.path)
            if not match:
                continue
            method = "GET" if request.method == "HEAD" else request.method
            if method not in handlers:
                allowed = sorted(set(handlers) | ({"HEAD"} if "GET" in handlers else set()))
                raise HTTPError(
                    405,
                    "Method {} is not allowed here; allowed: {}.".format(request.method, ", ".join(allowed)),
                    headers=[("Allow", ", ".join(allowed))],
                )
            handler = handlers[method]
            if getattr(handler, "needs_admin", False):
                if request.path.startswith("/api/"):
                    self.require_basic(request)
                elif not request.admin:
                    return self.not_signed_in(request, method)
            return handler(request, *(int(group) if group.isdigit() else group for group in match.groups()))
        raise HTTPError(404, f"Nothing is at {request.path}.")

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

    # -- who may change things --------------------------------------------------------------------------

    def require_basic(self, request):
        """Pass HTTP Basic credentials of the administrator; 401 (or 429 after failures) otherwise."""
        challenge = [("WWW-Authenticate", f'Basic realm="{self.title}", charset="UTF-8"')]
        scheme, _space, encoded = request.environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "basic":
            raise HTTPError(401, f"Changes need the administrator's credentials (HTTP Basic, user {USER}).", challenge)
        self.check_rate(request)
        try:
            user, _colon, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            user = password = ""
        if not self.admin.check(request.client, user, password):
            raise HTTPError(401, "Wrong user name or password.", challenge)

    def check_rate(self, request):
        wait = self.admin.retry_after(request.client)
        if wait:
            minutes = -(-wait // 60)
            raise HTTPError(
                429,
                f"Too many failed sign-ins from your address: try again in {_plural(minutes, 'minute')}.",
                [("Retry-After", str(wait))],
            )

    def not_signed_in(self, request, method):
        """Pages that change things: to the sign-in page. A form sent after the session ended comes back after it."""
        if method == "GET":
            params = {"next": _here(request)}
            back = self.referrer(request)
            if back:
                params["back"] = back
            return redirect("/signin?" + urllib.parse.urlencode(params))
        fields, uploads = self.read_form(request)
        resume = _resume_page(request.path)
        # What to fill the form in with again (a delete's confirmation has nothing to keep).
        draft = {name: fields[name] for name in (*FIELDS, FORM_TOKEN) if name in fields}
        if not any(name in fields for name in FIELDS):
            draft = {}
        message = "Your session has ended, so nothing was saved yet. Sign in"
        if any(name in fields for name in FIELDS):
            message += " and the form comes back as you filled it in; then save again."
            if uploads.get("photo"):
                message += " Choose the photo again."
        else:
            message += " and try again."
        return self.signin_form(request, resume, self.way_back(request, resume), "", 403, draft=draft, why=message)

    def referrer(self, request):
        """The path of the page of this site the request came from, or None."""
        parts = urllib.parse.urlsplit(request.environ.get("HTTP_REFERER", ""))
        if not parts.path or parts.netloc != request.environ.get("HTTP_HOST"):
            return None
        path = _local_path(parts.path + ("?" + parts.query if parts.query else ""))
        return None if path.startswith("/signin") else path

    def way_back(self, request, target, given=""):
        """Where Cancel on the sign-in page goes: where the user came from, never the sign-in page itself."""
        for candidate in (given, self.referrer(request) if request.method == "GET" else None, target):
            if candidate:
                path = _local_path(candidate)
                if not path.startswith("/signin") and not self.needs_admin_to_see(path):
                    return path
        return "/"

    def needs_admin_to_see(self, path):
        for pattern, handlers in self.routes:
            if pattern.fullmatch(path.partition("?")[0]):
                return getattr(handlers.get("GET"), "needs_admin", False)
        return False

    def signin_page(self, request):
        target = _local_path(request.query.get("next", "/"))
        back = self.way_back(request, target, request.query.get("back", ""))
        return self.signin_form(request, target, back, "", 200)

    def signin_form(self, request, target, back, error, status, headers=None, draft=None, why=None):
        """The sign-in page; ``why`` says why it is shown, ``draft`` is what a form held when its session ended."""
        token = self.csrf_token(request)
        html = pages.signin_form(self.site(request), token, target, back, error, self.admin.configured(), draft, why)
        return Response(html, status, headers=headers)

    def signin(self, request):
        fields, _uploads = self.read_form(request)
        target = _local_path(fields.get("next", "/"))
        back = self.way_back(request, target, fields.get("back", ""))
        draft = {name[6:]: value for name, value in fields.items() if name.startswith("draft_")}
        try:
            self.check_rate(request)
        except HTTPError as error:
            return self.signin_form(request, target, back, error.message, error.status, error.headers, draft)
        if not self.admin.check(request.client, fields.get("username", ""), fields.get("password", "")):
            tries = _wrong_password(self.admin.tries_left(request.client))
            return self.signin_form(request, target, back, tries, 403, draft=draft)
        token, lifetime = self.admin.new_session()
        response = redirect(target, "Signed in.")
        response.headers.append(_cookie(SESSION_COOKIE, token, request, lifetime))
        if draft:
            sealed = self.csrf.seal(_b64(json.dumps({"page": target, "fields": draft})))
            response.headers.append(_cookie(DRAFT_COOKIE, sealed, request, DRAFT_SECONDS))
        return response

    def take_draft(self, request, response_headers):
        """The fields a form held when its session ended, if they belong to this page (and only once)."""
        sealed = request.cookies.get(DRAFT_COOKIE)
        if not sealed:
            return None
        response_headers.append(_cookie(DRAFT_COOKIE, "", request, 0))
        text = self.csrf.unseal(sealed)
        try:
            draft = json.loads(base64.urlsafe_b64decode(text.encode("ascii"))) if text else None
        except ValueError:
            return None
        if not isinstance(draft, dict) or draft.get("page") != request.path:
            return None
        if not isinstance(draft.get("fields"), dict):
            return None
        return {name: str(value) for name, value in draft["fields"].items()}

    def signout(self, request):
        self.read_form(request)
        self.admin.end_session(request.cookies.get(SESSION_COOKIE))
        response = redirect("/", "Signed out.")
        response.headers.append(_cookie(SESSION_COOKIE, "", request, 0))
        return response

    # -- shared pieces ----------------------------------------------------------------------------------

    def site(self, request):
        site = {"title": self.title, "version": __version__, "hostname": self.hostname, "admin": request.admin}
        # Where the header's "Sign in" comes back to.
        site["here"] = _here(request) if request.method in ("GET", "HEAD") else "/"
        site.update(self.metadata.get())
        if request.admin:
            site["csrf_token"] = self.csrf_token(request)
        if request.flash:
            site["flash"] = request.flash
            request.flash_shown = True
        return site

    def csrf_token(self, request):
        nonce = request.cookies.get(COOKIE) or request.new_nonce
        if not nonce:
            nonce = request.new_nonce = self.csrf.new_nonce()
        return self.csrf.token(nonce)

    def read_form(self, request):
        """Fields and uploads of a form POST, after the CSRF check."""
        try:
            body = request.body(self.form_max_bytes)
        except HTTPError as error:
            if error.status != 413:
                raise
            raise HTTPError(
                413,
                f"The form was too large: a photo can be at most {pages.human_size(self.upload_max_bytes)}. "
                "Go back, choose a smaller photo and save again.",
            ) from error
        try:
            fields, uploads = parse_form(request.content_type, body)
        except FormError as exc:
            raise HTTPError(400, str(exc)) from exc
        if not self.csrf.valid(request.cookies.get(COOKIE), fields.get(FIELD)):
            raise HTTPError(
                403,
                "The form could not be verified (missing or invalid CSRF token). Reload the page and try again.",
            )
        return fields, uploads

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

    def once(self, fields, act):
        """Run ``act`` (which answers a form with a redirect) once per form token; a repeat gets the same redirect."""
        token = fields.get(FORM_TOKEN, "")
        if not _FORM_TOKEN.fullmatch(token):
            return act()
        key = hashlib.sha256(token.encode("ascii")).hexdigest()
        deadline = time.monotonic() + _FORM_WAIT_SECONDS
        while True:
            now = time.time()
            first = self.store.claim_form(key, now, now + FORM_TOKEN_SECONDS)
            if first is None:
                break
            if first:
                return redirect(first["location"], first["flash"] or None)
            # The first sending is still at work: its answer is the one to give.
            if time.monotonic() > deadline:
                raise HTTPError(409, "This form is still being saved. Reload the page in a moment to see the result.")
            time.sleep(0.1)
        try:
            response = act()
        except BaseException:
            self.store.release_form(key)
            raise
        location = dict(response.headers).get("Location")
        if response.status == 303 and location:
            self.store.finish_form(key, location, response.flash or "")
        else:
            # Not done (errors to correct): the same form may be sent again.
            self.store.release_form(key)
        return response

    def employee_or_404(self, employee_id):
        employee = self.store.get(employee_id)
        if employee is None:
            raise HTTPError(404, f"No employee has ID {employee_id}.")
        return employee

    # -- HTML pages -------------------------------------------------------------------------------------

    def list_page(self, request):
        query = request.query.get("q", "").strip()
        department = request.query.get("department", "").strip()
        try:
            number = max(1, int(request.query.get("page", "1")))
        except ValueError:
            number = 1
        employees, total = self.store.page(query, self.page_size, (number - 1) * self.page_size, department)
        pages_total = max(1, -(-total // self.page_size))
        if number > pages_total:
            # Past the end: the last page.
            number = pages_total
            employees, total = self.store.page(query, self.page_size, (number - 1) * self.page_size, department)
        paging = {"number": number, "pages": pages_total, "total": total, "size": self.page_size}
        departments = self.store.departments()
        html = pages.employee_list(self.site(request), employees, query, paging, department, departments)
        return Response(html)

    def detail_page(self, request, employee_id):
        employee = self.employee_or_404(employee_id)
        return Response(pages.employee_detail(self.site(request), employee))

    @needs_admin
    def new_page(self, request):
        return self.form_page_with_draft(request, {}, None)

    @needs_admin
    def edit_page(self, request, employee_id):
        return self.form_page_with_draft(request, self.employee_or_404(employee_id), employee_id)

    def form_page_with_draft(self, request, values, employee_id):
        headers = []
        draft = self.take_draft(request, headers)
        notice = None
        if draft:
            values = dict(values, **draft)
            notice = "Here is what you filled in before your session ended: check it and save."
        response = self.form_page(request, values, {}, employee_id, 200, notice)
        response.headers.extend(headers)
        return response

    def form_page(self, request, values, errors, employee_id, status, notice=None):
        token = values.get(FORM_TOKEN) or self.csrf.new_nonce()
        html = pages.employee_form(
            self.site(request),
            self.csrf_token(request),
            values,
            errors,
            employee_id,
            self.upload_max_bytes,
            token,
            notice,
        )
        return Response(html, status)

    def save_form(self, request, employee_id):
        """Create (``employee_id`` None) or update from a form; redirect, or show the form again."""
        fields, uploads = self.read_form(request)
        return self.once(fields, lambda: self.save_fields(request, employee_id, fields, uploads))

    def save_fields(self, request, employee_id, fields, uploads):
        values = {name: fields.get(name, "") for name in FIELDS}
        values[FORM_TOKEN] = fields.get(FORM_TOKEN, "")
        cleaned, errors = clean_employee({name: values[name] for name in FIELDS})
        small = None
        photo = uploads.get("photo")
        status = 422
        if photo is not None:
            try:
                small = self.checked_photo(photo.data)
            except HTTPError as error:
                errors["photo"] = error.message
                status = error.status
        if not errors:
            try:
                if employee_id is None:
                    employee = self.store.create(cleaned)
                else:
                    employee = self.store.update(employee_id, cleaned)
                    if employee is None:
                        raise HTTPError(404, f"No employee has ID {employee_id}.")
            except DuplicateEmail:
                errors = {"email": "Another employee already has this email address."}
                status = 409
        if errors:
            if photo is not None and "photo" not in errors:
                # A browser never fills a file field in again: say so where the photo goes.
                errors["photo"] = "Your photo was not saved: choose it again before you save."
                status = 422 if status == 409 else status
            return self.form_page(request, values, errors, employee_id, status if len(errors) == 1 else 422)
        if small:
            self.store.set_photo(employee["id"], *small)
        message = "Employee added." if employee_id is None else "Changes saved."
        return redirect(f"/employees/{employee['id']}", message)

    @needs_admin
    def create_page(self, request):
        return self.save_form(request, None)

    @needs_admin
    def update_page(self, request, employee_id):
        self.employee_or_404(employee_id)
        return self.save_form(request, employee_id)

    @needs_admin
    def delete_confirm_page(self, request, employee_id):
        employee = self.employee_or_404(employee_id)
        html = pages.delete_confirm(self.site(request), employee, self.csrf_token(request), self.csrf.new_nonce())
        return Response(html)

    @needs_admin
    def delete_page(self, request, employee_id):
        fields, _uploads = self.read_form(request)
        return self.once(fields, lambda: self.delete_employee(employee_id))

    def delete_employee(self, employee_id):
        employee = self.employee_or_404(employee_id)
        if not self.store.delete(employee_id):
            raise HTTPError(404, f"No employee has ID {employee_id}.")
        return redirect("/", f"{employee['name']} was deleted.")

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

    # -- JSON API ---------------------------------------------------------------------------------------

    def json_body(self, request):
        """The JSON object sent; 415 unless Content-Type is application/json."""
        if request.media_type != "application/json":
            raise HTTPError(415, "Send the employee as JSON with Content-Type: application/json.")
        body = request.body(_JSON_BODY_LIMIT)
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise HTTPError(400, f"The request body is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise HTTPError(400, "The request body must be a JSON object of employee fields.")
        return data

    def api_list(self, request):
        """Every matching employee, or with ``limit`` (and ``offset``) one page of them and the URL of the next."""
        query = request.query.get("q", "").strip()
        department = request.query.get("department", "").strip()
        if "limit" not in request.query and "offset" not in request.query:
            employees = self.store.search(query, department=department)
            return json_response({"employees": [_employee_json(e) for e in employees], "count": len(employees)})
        limit = _int_param(request, "limit", _API_PAGE_MAX, 1, _API_PAGE_MAX)
        offset = _int_param(request, "offset", 0, 0, None)
        employees, total = self.store.page(query, limit, offset, department)
        data = {"employees": [_employee_json(e) for e in employees], "count": len(employees), "total": total}
        data.update(limit=limit, offset=offset, next=None)
        if offset + limit < total:
            params = {name: value for name, value in (("q", query), ("department", department)) if value}
            data["next"] = "/api/employees?" + urllib.parse.urlencode(dict(params, limit=limit, offset=offset + limit))
        return json_response(data)

    @needs_admin
    def api_create(self, request):
        cleaned, errors = clean_employee(self.json_body(request))
        if errors:
            raise _validation_error(errors)
        try:
            employee = self.store.create(cleaned)
        except DuplicateEmail as exc:
            raise _duplicate(cleaned["email"]) from exc
        return json_response(_employee_json(employee), 201, [("Location", f"/api/employees/{employee['id']}")])

    def api_get(self, request, employee_id):
        return json_response(_employee_json(self.employee_or_404(employee_id)))

    def api_update(self, request, employee_id, partial):
        self.employee_or_404(employee_id)
        data = self.json_body(request)
        # A client may send back what GET gave it; what it cannot change is ignored.
        for read_only in _READ_ONLY:
            data.pop(read_only, None)
        cleaned, errors = clean_employee(data, partial=partial)
        if errors:
            raise _validation_error(errors)
        try:
            employee = self.store.update(employee_id, cleaned)
        except DuplicateEmail as exc:
            raise _duplicate(cleaned["email"]) from exc
        if employee is None:
            raise HTTPError(404, f"No employee has ID {employee_id}.")
        return json_response(_employee_json(employee))

    @needs_admin
    def api_replace(self, request, employee_id):
        return self.api_update(request, employee_id, partial=False)

    @needs_admin
    def api_patch(self, request, employee_id):
        return self.api_update(request, employee_id, partial=True)

    @needs_admin
    def api_delete(self, request, employee_id):
        if not self.store.delete(employee_id):
            raise HTTPError(404, f"No employee has ID {employee_id}.")
        return json_response(None, 204)

    @needs_admin
    def api_put_photo(self, request, employee_id):
        self.employee_or_404(employee_id)
        if request.media_type in HEIC_MEDIA_TYPES:
            raise HTTPError(415, HEIC_REFUSED)
        if request.media_type not in ALLOWED_TYPES:
            raise HTTPError(415, "Send the photo as the raw body with Content-Type " + ", ".join(ALLOWED_TYPES) + ".")
        data = request.body(self.upload_max_bytes)
        if not data:
            raise HTTPError(400, "The photo is empty.")
        self.store.set_photo(employee_id, *self.checked_photo(data, request.media_type))
        return json_response(_employee_json(self.store.get(employee_id)))

    @needs_admin
    def api_delete_photo(self, request, employee_id):
        if not self.store.set_photo(employee_id, None, None):
            raise HTTPError(404, f"No employee has ID {employee_id}.")
        return json_response(None, 204)


_UNAVAILABLE = "The directory cannot reach its data right now. Please try again in a minute."


def _int_param(request, name, default, low, high):
    """The whole number ``name`` of the query string, within [low, high]; 400 naming the value otherwise."""
    text = request.query.get(name, "")
    try:
        value = int(text) if text != "" else default
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise HTTPError(400, f"{name}={text!r} is not a whole number {bounds}.")
    return value


def _wrong_password(left):
    """What a failed sign-in says: how many tries are left before sign-in from this address pauses."""
    minutes = WINDOW_SECONDS // 60
    if left == 0:
        return f"Wrong user name or password. No tries left: sign in again in {minutes} minutes."
    tries = "1 try" if left == 1 else f"{left} tries"
    return f"Wrong user name or password. {tries} left before a {minutes}-minute pause."


def _plural(count, word):
    return f"{count} {word}{'' if count == 1 else 's'}"


def _here(request):
    """The path and query of the page asked for."""
    query = request.environ.get("QUERY_STRING")
    return request.path + ("?" + query if query else "")


def _resume_page(path):
    """The page that shows again the form sent to ``path``."""
    if path == "/employees":
        return "/employees/new"
    if re.fullmatch(r"/employees/\d+", path):
        return path + "/edit"
    return path


def _b64(text):
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii")


def load_config(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
