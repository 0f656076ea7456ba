"""The directory's HTML pages: the list, an employee, the forms that change employees, sign-in and sign-out.

``Pages`` is a part of ``web.Application``: it uses the application's store, settings, route table, CSRF
secret, administrator and metadata client, and its ``check_rate``, ``employee_or_404`` and ``checked_photo``.
The HTML itself is written by pages.py.
"""

import base64
import hashlib
import json
import re
import time
import urllib.parse

from . import __version__, pages
from .auth import SESSION_COOKIE, WINDOW_SECONDS
from .csrf import COOKIE, FIELD
from .forms import FormError, parse_form
from .http_plumbing import HTTPError, Response, cookie, local_path, needs_admin, needs_admin_to_see, redirect
from .store_common import DuplicateEmail
from .validation import FIELDS, clean_employee

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


class Pages:
    """The handlers of the HTML pages (see ``Application.routes``)."""

    # -- signing in and out -----------------------------------------------------------------------------

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
        path = local_path(parts.path + ("?" + parts.query if parts.query else ""))
        return None if path.startswith("/signin") else path

    def way_back(self, request, target, given=""):
        """Where Cancel on the sign-in page goes: where the user came from, never the sign-in page itself."""
        for candidate in (given, self.referrer(request) if request.method == "GET" else None, target):
            if candidate:
                path = local_path(candidate)
                if not path.startswith("/signin") and not needs_admin_to_see(self.routes, path):
                    return path
        return "/"

    def signin_page(self, request):
        target = local_path(request.query.get("next", "/"))
        back = self.way_back(request, target, request.query.get("back", ""))
        return self.signin_form(request, target, back, "", 200)

    def signin_form(self, request, target, back, error, status, headers=None, draft=None, why=None):
        """The sign-in page; ``why`` says why it is shown, ``draft`` is what a form held when its session ended."""
        token = self.csrf_token(request)
        html = pages.signin_form(self.site(request), token, target, back, error, self.admin.configured(), draft, why)
        return Response(html, status, headers=headers)

    def signin(self, request):
        fields, _uploads = self.read_form(request)
        target = local_path(fields.get("next", "/"))
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
        response.headers.append(cookie(SESSION_COOKIE, token, request, lifetime))
        if draft:
            sealed = self.csrf.seal(_b64(json.dumps({"page": target, "fields": draft})))
            response.headers.append(cookie(DRAFT_COOKIE, sealed, request, DRAFT_SECONDS))
        return response

    def take_draft(self, request, response_headers):
        """The fields a form held when its session ended, if they belong to this page (and only once)."""
        sealed = request.cookies.get(DRAFT_COOKIE)
        if not sealed:
            return None
        response_headers.append(cookie(DRAFT_COOKIE, "", request, 0))
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
        response.headers.append(cookie(SESSION_COOKIE, "", request, 0))
        return response

    # -- what the pages share ---------------------------------------------------------------------------

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

    # -- the directory's pages --------------------------------------------------------------------------

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


def _wrong_password(left):
    """What a failed sign-in says: how many tries are left before sign-in from this address pauses."""
    minutes = WINDOW_SECONDS // 60
    if left == 0:
        return f"Wrong user name or password. No tries left: sign in again in {minutes} minutes."
    tries = "1 try" if left == 1 else f"{left} tries"
    return f"Wrong user name or password. {tries} left before a {minutes}-minute pause."


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
