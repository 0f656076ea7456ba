"""HTML pages: forms, CSRF, escaping, uploads."""

import re

import pytest
from directory_testing import Client, make_app, multipart
from employee_directory.images import shrink
from employee_directory.pages import human_size, initials

FORM = {
    "name": "Margaret Hamilton",
    "job_title": "Director",
    "department": "Software Engineering",
    "location": "Cambridge",
    "email": "margaret@example.com",
}
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"  # noqa: E501


def count(client):
    return client.get("/api/employees").json()["count"]


def test_list_page_shows_employees_and_searches(client):
    page = client.get("/")
    assert page.status == 200
    assert page.header("Content-Type") == "text/html; charset=utf-8"
    assert "Ada Lovelace" in page.text
    assert "Grace Hopper" in page.text
    assert '<meta name="viewport"' in page.text
    found = client.get("/?q=grace")
    assert "Grace Hopper" in found.text
    assert "Ada Lovelace" not in found.text
    assert "1 result for" in found.text


def test_pages_carry_no_inline_script_or_style(client):
    # The CSP nginx sends allows only same-origin scripts and styles.
    for path in ("/", "/employees/1", "/employees/new", "/employees/1/edit", "/employees/1/delete", "/signin"):
        text = client.get(path).text
        # The one script is a file of the app's own (the form's photo-size check).
        assert re.findall(r"<script[^>]*>", text) in ([], ['<script src="/static/form.js" defer>'])
        assert "style=" not in text
        assert "<style" not in text
    css = client.get("/static/style.css")
    assert css.status == 200
    assert css.header("Content-Type") == "text/css; charset=utf-8"


def test_add_through_form_with_photo(client):
    token = client.csrf_token()
    result = client.post_form("/employees", dict(FORM, csrf_token=token), {"photo": ("m.gif", "image/gif", GIF)})
    assert result.status == 303
    location = result.header("Location")
    assert re.fullmatch(r"/employees/\d+", location)
    page = client.get(location)
    assert "Margaret Hamilton" in page.text
    assert f'src="{location}/photo"' in page.text
    photo = client.get(location + "/photo")
    # The app's own small copy: a GIF with a transparent colour becomes a PNG.
    assert photo.body == shrink(GIF, 512)[0]
    assert photo.header("Content-Type") == "image/png"


def test_urlencoded_form_works_too(client):
    token = client.csrf_token()
    body = "&".join("{}={}".format(*item) for item in dict(FORM, csrf_token=token).items()).replace(" ", "+")
    result = client.request("POST", "/employees", body.encode(), "application/x-www-form-urlencoded")
    assert result.status == 303
    assert count(client) == 3


def test_edit_and_delete_through_forms(client):
    token = client.csrf_token("/employees/1/edit")
    edit = client.get("/employees/1/edit")
    assert 'value="Ada Lovelace"' in edit.text
    result = client.post_form("/employees/1", dict(FORM, csrf_token=token))
    assert result.status == 303
    assert client.get("/api/employees/1").json()["name"] == "Margaret Hamilton"
    result = client.post_form("/employees/1/delete", {"csrf_token": token})
    assert result.status == 303
    assert result.header("Location") == "/"
    assert client.get("/employees/1").status == 404


def test_form_without_csrf_token_is_refused(client):
    client.csrf_token()
    result = client.post_form("/employees", FORM)
    assert result.status == 403
    assert "CSRF" in result.text
    assert client.post_form("/employees/1/delete", {"csrf_token": ""}).status == 403
    assert count(client) == 2


def test_form_with_token_but_without_cookie_is_refused(client):
    # What a forged cross-site POST looks like: SameSite=Strict keeps the cookie home.
    token = client.csrf_token()
    result = client.post_form("/employees", dict(FORM, csrf_token=token), cookies=False)
    assert result.status == 403
    assert count(client) == 2


def test_token_from_another_browser_is_refused(app, client):
    attacker = Client(app)
    their_token = attacker.csrf_token("/signin")
    client.csrf_token()
    assert client.post_form("/employees/1/delete", {"csrf_token": their_token}).status == 403
    assert count(client) == 2


def test_invalid_form_is_shown_again_with_messages(client):
    token = client.csrf_token()
    result = client.post_form("/employees", dict(FORM, email="nope", name="", csrf_token=token))
    assert result.status == 422
    assert "Name is required." in result.text
    assert "Email must be an address like name@example.com." in result.text
    assert 'value="Director"' in result.text  # what was typed is kept
    assert count(client) == 2


def test_oversized_form_upload_is_413_and_nothing_changes(client):
    token = client.csrf_token()
    big = GIF + b"\x00" * (100 * 1024)
    result = client.post_form("/employees", dict(FORM, csrf_token=token), {"photo": ("big.gif", "image/gif", big)})
    assert result.status == 413
    assert "too large" in result.text
    assert count(client) == 2


def test_photo_just_over_limit_shows_form_error(client):
    token = client.csrf_token()
    over = GIF + b"\x00" * 4096
    result = client.post_form("/employees", dict(FORM, csrf_token=token), {"photo": ("o.gif", "image/gif", over)})
    assert result.status == 413
    assert "Photo too large: the limit is 4 KiB." in result.text
    assert count(client) == 2


def test_non_image_upload_is_415(client):
    token = client.csrf_token()
    html_file = ("x.gif", "image/gif", b"<html><script>alert(1)</script>")
    result = client.post_form("/employees", dict(FORM, csrf_token=token), {"photo": html_file})
    assert result.status == 415
    assert "Photos must be JPEG, PNG, GIF or WebP images." in result.text
    assert count(client) == 2


def test_xss_payload_is_escaped_everywhere(client):
    payload = '<script>alert("x")</script>'
    attr = '" onmouseover="alert(1)'
    created = client.send_json(
        "POST", "/api/employees", dict(FORM, name=payload, location=attr, email="x@example.com")
    ).json()
    for path in ("/", f"/employees/{created['id']}", f"/employees/{created['id']}/edit", "/?q=" + payload):
        text = client.get(path).text
        assert payload not in text
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
        assert 'onmouseover="alert' not in text


def test_unknown_pages_and_methods(client):
    missing = client.get("/employees/999")
    assert missing.status == 404
    assert "No employee has ID 999." in missing.text
    assert client.get("/nowhere").status == 404
    wrong = client.request("DELETE", "/employees/1")
    assert wrong.status == 405
    assert wrong.header("Allow") == "GET, HEAD, POST"


def test_multipart_body_with_binary_photo_survives_parsing(client):
    token = client.csrf_token()
    tricky = GIF + b"\r\n--not-a-boundary\r\n\xff\x00\r\n"
    body, content_type = multipart(dict(FORM, csrf_token=token), {"photo": ("t.gif", "image/gif", tricky)})
    result = client.request("POST", "/employees", body, content_type)
    assert result.status == 303
    # The photo arrived byte for byte: the app's copy is the one made of exactly these bytes.
    assert client.get(result.header("Location") + "/photo").body == shrink(tricky, 512)[0]


def test_list_page_has_a_heading_and_pages(tmp_path):
    client = Client(make_app(tmp_path, page_size=1))
    first = client.get("/")
    assert "<h1>Employees</h1>" in first.text
    assert "2 employees, showing 1 to 1" in first.text
    assert "Ada Lovelace" in first.text
    assert "Grace Hopper" not in first.text
    assert 'href="/?page=2" rel="next"' in first.text
    second = client.get("/?page=2")
    assert "Grace Hopper" in second.text
    assert 'href="/" rel="prev"' in second.text
    assert "Page 2 of 2" in second.text
    assert "Page 2 of 2" in client.get("/?page=99").text  # past the end: the last page
    assert "Page 1 of 2" in client.get("/?page=nonsense").text
    searched = client.get("/?q=e&page=2")
    assert 'href="/?q=e" rel="prev"' in searched.text


def test_form_fields_have_autocomplete_and_errors_are_tied_to_them(client):
    page = client.get("/employees/new").text
    for field, token in (("name", "name"), ("email", "email"), ("job_title", "organization-title")):
        assert re.search(rf'<input id="{field}"[^>]* autocomplete="{token}"', page)
    token = client.csrf_token()
    result = client.post_form("/employees", dict(FORM, email="nope", csrf_token=token)).text
    assert re.search(r'<input id="email"[^>]* aria-describedby="email-error" aria-invalid="true"', result)
    assert '<p class="error" id="email-error">Email must be an address like name@example.com.</p>' in result
    assert 'aria-describedby="photo-hint photo-error"' in result


def test_saving_and_deleting_are_confirmed(client):
    token = client.csrf_token()
    created = client.post_form("/employees", dict(FORM, csrf_token=token))
    location = created.header("Location")
    assert "Employee added." in client.get(location).text
    assert "Employee added." not in client.get(location).text
    client.post_form(location, dict(FORM, location="Boston", csrf_token=token))
    assert "Changes saved." in client.get(location).text
    confirm = client.get(location + "/delete")
    assert confirm.status == 200
    assert '<h1>Delete <span dir="auto">Margaret Hamilton</span>?</h1>' in confirm.text
    assert "This cannot be undone." in confirm.text
    assert count(client) == 3  # asking changes nothing
    deleted = client.post_form(location + "/delete", {"csrf_token": token})
    assert deleted.header("Location") == "/"
    assert "Margaret Hamilton was deleted." in client.get("/").text


def test_employee_page_leads_back_to_the_list(visitor):
    assert '<a href="/">&larr; All employees</a>' in visitor.get("/employees/1").text


def test_photo_must_be_chosen_again_after_an_error_and_the_page_says_so(client):
    token = client.csrf_token()
    result = client.post_form(
        "/employees", dict(FORM, email="nope", csrf_token=token), {"photo": ("m.gif", "image/gif", GIF)}
    )
    assert result.status == 422
    assert "Your photo was not saved: choose it again before you save." in result.text
    assert count(client) == 2


def test_oversized_form_states_the_limit_in_mib(tmp_path):
    client = Client(make_app(tmp_path, upload_max_bytes=1024 * 1024), admin=True)
    token = client.csrf_token()
    assert "up to 1 MiB." in client.get("/employees/new").text
    big = GIF + b"\x00" * (1024 * 1024 + 70 * 1024)
    result = client.post_form("/employees", dict(FORM, csrf_token=token), {"photo": ("big.gif", "image/gif", big)})
    assert result.status == 413
    assert result.header("Content-Type") == "text/html; charset=utf-8"
    assert "a photo can be at most 1 MiB" in result.text


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Ada Lovelace", "AL"), ('<"Bob" Smith', "BS"), ("«Émile» Zola", "ÉZ"), ("!!! ???", "?"), ("d'Arcy", "D")],
)
def test_initials_skip_punctuation(name, expected):
    assert initials(name) == expected


@pytest.mark.parametrize(
    ("size", "text"),
    [(2097152, "2 MiB"), (1572864, "1.5 MiB"), (1048576, "1 MiB"), (4096, "4 KiB"), (100, "100 bytes")],
)
def test_sizes_are_stated_in_mib(size, text):
    assert human_size(size) == text
