"""The directory's JSON API: employees under /api/employees, their photos, and HTTP Basic for changes.

``Api`` is a part of ``web.Application``: it uses the application's store and settings, and its
``check_rate``, ``employee_or_404`` and ``checked_photo``.
"""

import base64
import json
import urllib.parse

from .auth import USER
from .http_plumbing import HTTPError, json_response, needs_admin
from .images import ALLOWED_TYPES, HEIC_MEDIA_TYPES, HEIC_REFUSED
from .store_common import DuplicateEmail
from .validation import clean_employee

_JSON_BODY_LIMIT = 64 * 1024
# The most employees one page of GET /api/employees?limit=N gives.
_API_PAGE_MAX = 1000
_READ_ONLY = ("id", "has_photo", "photo_url", "url", "created_at", "updated_at")


class Api:
    """The handlers of the JSON API (see ``Application.routes``)."""

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


def _employee_json(employee):
    data = dict(employee)
    data["photo_url"] = f"/employees/{employee['id']}/photo" if employee["has_photo"] else None
    data["url"] = f"/api/employees/{employee['id']}"
    return data


def _validation_error(errors):
    return HTTPError(422, "Validation failed: " + " ".join(errors.values()), fields=errors)


def _duplicate(email):
    return HTTPError(409, f"An employee with email {email} already exists.", fields={"email": "Already in use."})


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
