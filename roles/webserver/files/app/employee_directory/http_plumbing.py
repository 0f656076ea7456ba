"""The app's HTTP plumbing: requests, responses, errors as answers, cookies, and finding the route of a request."""

import contextlib
import http
import http.cookies
import json
import re
import urllib.parse

from .csrf import COOKIE

FLASH_COOKIE = "edir_flash"
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


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


def cookie(name, value, request, max_age=None, same_site="Lax"):
    parts = [f"{name}={value}", "Path=/", "HttpOnly", f"SameSite={same_site}"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if request.https:
        parts.append("Secure")
    return ("Set-Cookie", "; ".join(parts))


def local_path(target):
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


def find_route(routes, request):
    """(handler, method, arguments from the path) of the route the request names; 404 or 405 otherwise."""
    for pattern, handlers in routes:
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
        arguments = [int(group) if group.isdigit() else group for group in match.groups()]
        return handlers[method], method, arguments
    raise HTTPError(404, f"Nothing is at {request.path}.")


def needs_admin_to_see(routes, path):
    """Whether the page at ``path`` (a query string allowed) is shown to the administrator only."""
    for pattern, handlers in routes:
        if pattern.fullmatch(path.partition("?")[0]):
            return getattr(handlers.get("GET"), "needs_admin", False)
    return False


def send(request, response, start_response):
    """Hand ``response`` to the WSGI server with what every answer carries: cookies, HSTS, Content-Length."""
    if request.new_nonce:
        response.headers.append(cookie(COOKIE, request.new_nonce, request, same_site="Strict"))
    if response.flash:
        response.headers.append(cookie(FLASH_COOKIE, urllib.parse.quote(response.flash), request, 60))
    elif request.flash_shown:
        response.headers.append(cookie(FLASH_COOKIE, "", request, 0))
    if request.https:  # browsers then never come back over plain HTTP (a year)
        response.headers.append(("Strict-Transport-Security", "max-age=31536000"))
    response.headers.append(("Content-Length", str(len(response.body))))
    status = f"{response.status} {http.HTTPStatus(response.status).phrase}"
    start_response(status, response.headers)
    return [b"" if request.method == "HEAD" else response.body]
