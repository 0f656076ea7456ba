"""The directory as people use it every day, on both stores: names in every script, many employees, double
clicks, sessions that end under a form, photos from phones."""

import base64
import concurrent.futures
import html
import io
import re
import urllib.parse

import pytest
from directory_testing import ADMIN_PASSWORD, NEW, Client, image_bytes, make_app, opened
from employee_directory.images import HEIC_REFUSED, UNREADABLE
from employee_directory.web import DEFAULTS
from PIL import Image

# Employees whose names and places need more than ASCII, added to the two seed employees.
WORLD = [
    ("Zoë Adams", "Design", "Zürich"),
    ("Émile Zola", "Writing", "Paris"),
    ("Łukasz Nowak", "engineering", "Kraków"),
    ("Νίκος Παπαδόπουλος", "Engineering", "Αθήνα"),
    ("Иван Петров", "Research", "Москва"),
    ("zoe baker", "Design", "Hauptstraße 5, Köln"),
    ("Ærø Ørsted", "Research", "København"),
]

# One table of queries, run on both stores: (q, department, the names found, in the directory's order).
QUERIES = [
    (
        "",
        "",
        [
            "Ada Lovelace",
            "Ærø Ørsted",
            "Émile Zola",
            "Grace Hopper",
            "Łukasz Nowak",
            "Zoë Adams",
            "zoe baker",
            "Νίκος Παπαδόπουλος",
            "Иван Петров",
        ],
    ),
    ("иван", "", ["Иван Петров"]),
    ("ИВАН", "", ["Иван Петров"]),
    ("ZOË", "", ["Zoë Adams", "zoe baker"]),
    ("zoe", "", ["Zoë Adams", "zoe baker"]),
    ("émile", "", ["Émile Zola"]),
    ("EMILE", "", ["Émile Zola"]),
    ("lukasz", "", ["Łukasz Nowak"]),
    ("ŁUKASZ", "", ["Łukasz Nowak"]),
    ("νικος", "", ["Νίκος Παπαδόπουλος"]),
    ("ΑΘΉΝΑ", "", ["Νίκος Παπαδόπουλος"]),
    ("STRASSE", "", ["zoe baker"]),
    ("krakow", "", ["Łukasz Nowak"]),
    ("aero", "", ["Ærø Ørsted"]),
    ("zurich", "", ["Zoë Adams"]),
    ("", "ENGINEERING", ["Ada Lovelace", "Łukasz Nowak", "Νίκος Παπαδόπουλος"]),
    ("", "design", ["Zoë Adams", "zoe baker"]),
    ("köln", "Design", ["zoe baker"]),
    ("zoe", "Research", []),
    ("nobody", "", []),
    ("%", "", []),
    ("_", "", []),
]


@pytest.fixture
def world(tmp_path):
    """The administrator of a directory of SEED (Ada in Engineering, Grace in Navy) and WORLD."""
    client = Client(make_app(tmp_path, page_size=50), admin=True)
    for number, (name, department, location) in enumerate(WORLD):
        person = dict(NEW, name=name, department=department, location=location, email=f"p{number}@example.com")
        assert client.send_json("POST", "/api/employees", person).status == 201
    return client


def listed_names(text):
    return re.findall(r'<strong dir="auto">([^<]+)</strong>', text)


def test_search_and_sort_fold_case_and_accents_the_same_on_both_stores(world):
    for query, department, expected in QUERIES:
        params = urllib.parse.urlencode({"q": query, "department": department})
        assert listed_names(world.get(f"/?{params}").text) == expected, (query, department)
        found = world.get("/api/employees?" + params).json()["employees"]
        assert [employee["name"] for employee in found] == expected, (query, department)
        paged = world.get(f"/api/employees?{params}&limit=2").json()
        assert [employee["name"] for employee in paged["employees"]] == expected[:2], (query, department)
        assert paged["total"] == len(expected)


def test_department_filter_lists_each_department_once(world):
    text = world.get("/").text
    options = re.findall(r'<option value="([^"]*)"', text)
    # "engineering" and "Engineering" are one department; one spelling is offered.
    assert options == ["", "Design", "Engineering", "Navy", "Research", "Writing"]
    chosen = world.get("/?department=Research").text
    assert '<option value="Research" selected>' in chosen
    assert "2 employees in Research" in chosen


def test_cards_show_the_email_and_names_take_their_own_direction(world):
    text = world.get("/?q=zoe").text
    assert '<span class="email">p0@example.com</span>' in text
    assert '<span class="email">p5@example.com</span>' in text
    assert '<strong dir="auto">Zoë Adams</strong>' in text
    detail = world.get("/employees/3").text
    assert '<h1 dir="auto">Zoë Adams</h1>' in detail
    form = world.get("/employees/3/edit").text
    assert re.search(r'<input id="name"[^>]* dir="auto"', form)


@pytest.mark.sqlite_only  # the pages are the app's; both stores' paging: test_pagination_reaches_every_employee_once
def test_many_employees_get_page_numbers_first_last_and_a_window(tmp_path):
    app = make_app(tmp_path, page_size=24, seed=[])
    client = Client(app, admin=True)
    for number in range(1000):
        app.store.create(dict(NEW, name=f"Person {number:04d}", email=f"person{number}@example.com"))
    text = client.get("/?page=20").text
    pager = re.search(r'<nav class="pager".*?</nav>', text).group(0)
    numbers = [int(n) for n in re.findall(r'aria-label="Page (\d+)"', pager)]
    assert numbers == [1, 18, 19, 20, 21, 22, 42]
    assert '<span aria-current="page" aria-label="Page 20">20</span>' in pager
    assert pager.count("&hellip;") == 2
    assert 'href="/?page=42"' in pager
    assert "1000 employees, showing 457 to 480" in text
    # Near the start, no gap is shown where it would hide a single page.
    first = re.search(r'<nav class="pager".*?</nav>', client.get("/?page=3").text).group(0)
    assert [int(n) for n in re.findall(r'aria-label="Page (\d+)"', first)] == [1, 2, 3, 4, 5, 42]
    # A department's pages keep the filter in every link.
    paged = client.get("/?department=Flight+Research&page=2").text
    assert 'href="/?department=Flight+Research&amp;page=3"' in paged


def test_an_empty_directory_invites_the_administrator_to_add_the_first_employee(tmp_path):
    app = make_app(tmp_path, seed=[])
    visitor = Client(app)
    assert 'href="/signin?next=/employees/new">Sign in</a> to add the first employee' in visitor.get("/").text
    admin = Client(app, admin=True)
    assert '<a href="/employees/new">Add the first employee</a>' in admin.get("/").text
    assert "No employees found." in admin.get("/?q=nobody").text


def test_every_field_error_shows_at_once(client):
    token = client.csrf_token()
    fields = {"csrf_token": token, "name": "", "job_title": "", "department": "", "location": "", "email": "x"}
    result = client.post_form("/employees", fields)
    assert result.status == 422
    errors = dict(re.findall(r'<p class="error" id="(\w+)-error">([^<]+)</p>', result.text))
    assert set(errors) == {"name", "job_title", "department", "location", "email"}
    assert "novalidate" in re.search(r'<form class="edit"[^>]*>', result.text).group(0)


# -- a form sent twice ----------------------------------------------------------------------------------


def form_tokens(client, path):
    """(CSRF token, one-time form token) of the form page at ``path``."""
    text = client.get(path).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)
    return csrf, re.search(r'name="form_token" value="([^"]+)"', text).group(1)


def answer(result):
    """What a browser shows after a form: the redirect and its message."""
    flash = next((v for k, v in result.headers if k == "Set-Cookie" and v.startswith("edir_flash=")), "")
    return result.status, result.header("Location"), urllib.parse.unquote(flash.split(";")[0].partition("=")[2])


def test_a_form_sent_twice_answers_as_the_first_did_and_changes_nothing_more(client):
    csrf, once = form_tokens(client, "/employees/new")
    fields = dict(NEW, csrf_token=csrf, form_token=once)
    first, second = client.post_form("/employees", fields), client.post_form("/employees", fields)
    assert answer(first) == (303, "/employees/3", "Employee added.")
    assert answer(second) == answer(first)  # not "Another employee already has this email address"
    assert client.get("/api/employees").json()["count"] == 3

    csrf, once = form_tokens(client, "/employees/3/edit")
    fields = dict(NEW, job_title="Research Mathematician", csrf_token=csrf, form_token=once)
    edits = [client.post_form("/employees/3", fields) for _sending in range(2)]
    assert [answer(edit) for edit in edits] == [(303, "/employees/3", "Changes saved.")] * 2

    csrf, once = form_tokens(client, "/employees/3/delete")
    fields = {"csrf_token": csrf, "form_token": once}
    deletes = [client.post_form("/employees/3/delete", fields) for _sending in range(2)]
    assert [answer(delete) for delete in deletes] == [(303, "/", "Katherine Johnson was deleted.")] * 2  # not 404
    assert client.get("/api/employees").json()["count"] == 2
    # A new form is a new token: the same person can be added again.
    csrf, once = form_tokens(client, "/employees/new")
    assert client.post_form("/employees", dict(NEW, csrf_token=csrf, form_token=once)).status == 303


def test_a_form_sent_twice_at_once_saves_one_employee(client):
    csrf, once = form_tokens(client, "/employees/new")
    fields = dict(NEW, csrf_token=csrf, form_token=once)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _n: client.post_form("/employees", fields), range(2)))
    assert sorted(answer(result) for result in results) == [(303, "/employees/3", "Employee added.")] * 2
    assert client.get("/api/employees").json()["count"] == 3


def test_a_form_with_errors_can_be_corrected_and_sent_with_the_same_token(client):
    csrf, once = form_tokens(client, "/employees/new")
    wrong = client.post_form("/employees", dict(NEW, email="nope", csrf_token=csrf, form_token=once))
    assert wrong.status == 422
    assert f'name="form_token" value="{once}"' in wrong.text
    right = client.post_form("/employees", dict(NEW, csrf_token=csrf, form_token=once))
    assert answer(right) == (303, "/employees/3", "Employee added.")


# -- a session that ends under a form -------------------------------------------------------------------


def hidden_fields(text):
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', text))


def test_the_header_sign_in_link_comes_back_to_the_page(visitor):
    text = visitor.get("/employees/2?from=list").text
    assert '<a class="button secondary" href="/signin?next=%2Femployees%2F2%3Ffrom%3Dlist">Sign in</a>' in text
    assert '<a class="button secondary" href="/signin">Sign in</a>' in visitor.get("/").text
    signin = visitor.get("/signin?next=/employees/2").text
    assert hidden_fields(signin)["next"] == "/employees/2"
    assert re.search(r'<a class="button secondary" href="/employees/2">Cancel</a>', signin)
    assert visitor.sign_in(next_page="/employees/2").header("Location") == "/employees/2"


def test_cancel_on_the_sign_in_page_goes_where_the_user_came_from(visitor):
    came_from = {"Referer": "http://directory.example/employees/2", "Host": "directory.example"}
    redirected = visitor.get("/employees/1/edit", headers=came_from)
    assert redirected.header("Location") == "/signin?next=%2Femployees%2F1%2Fedit&back=%2Femployees%2F2"
    signin = visitor.get(redirected.header("Location")).text
    assert '<a class="button secondary" href="/employees/2">Cancel</a>' in signin
    # With nowhere known to come from, Cancel never leads to a page that sends back to signing in.
    for target in ("/employees/1/edit", "/signin", "/signin?next=/signin"):
        text = visitor.get("/signin?" + urllib.parse.urlencode({"next": target})).text
        assert '<a class="button secondary" href="/">Cancel</a>' in text, target
    # A wrong password keeps where Cancel goes.
    token = hidden_fields(signin)["csrf_token"]
    fields = dict(hidden_fields(signin), csrf_token=token, username="admin", password="wrong password 1")
    again = visitor.post_form("/signin", fields)
    assert '<a class="button secondary" href="/employees/2">Cancel</a>' in again.text


def test_an_edit_sent_after_the_session_ended_comes_back_filled_in_after_sign_in(app, client, monkeypatch):
    csrf, once = form_tokens(client, "/employees/1/edit")
    edited = dict(NEW, name="Ada King", job_title="Countess", csrf_token=csrf, form_token=once)
    # Thirteen hours later: the session (twelve hours) has ended.
    later = app.admin.clock() + 13 * 3600
    monkeypatch.setattr(app.admin, "clock", lambda: later)
    ended = client.post_form("/employees/1", edited)
    assert ended.status == 403
    assert "Sign in and the form comes back as you filled it in" in ended.text
    assert client.get("/api/employees/1").json()["name"] == "Ada Lovelace"  # nothing saved
    carried = hidden_fields(ended.text)
    assert carried["next"] == "/employees/1/edit"
    assert carried["draft_name"] == "Ada King"
    signed_in = client.post_form("/signin", dict(carried, username="admin", password=ADMIN_PASSWORD))
    assert signed_in.header("Location") == "/employees/1/edit"
    form = client.get("/employees/1/edit").text
    assert "check it and save" in form
    assert 'value="Ada King"' in form
    assert 'value="Countess"' in form
    assert f'name="form_token" value="{once}"' in form
    assert "edir_draft" not in client.cookies  # shown once
    assert 'value="Ada Lovelace"' in client.get("/employees/1/edit").text
    saved = client.post_form("/employees/1", dict(hidden_fields(form), **{k: edited[k] for k in NEW}))
    assert answer(saved) == (303, "/employees/1", "Changes saved.")
    assert client.get("/api/employees/1").json()["name"] == "Ada King"


def test_a_draft_is_only_for_its_own_page_and_cannot_be_forged(app, client):
    client.cookies["edir_draft"] = app.csrf.seal("eyJwYWdlIjogIi9lbXBsb3llZXMvbmV3In0")[:-4] + "0000"
    assert "check it and save" not in client.get("/employees/new").text
    sealed = app.csrf.seal(base64.urlsafe_b64encode(b'{"page": "/employees/2/edit", "fields": {"name": "X"}}').decode())
    client.cookies["edir_draft"] = sealed
    assert "check it and save" not in client.get("/employees/1/edit").text


# -- photos from phones ---------------------------------------------------------------------------------


def phone_photo(width=2400, height=1800):
    """A JPEG as a phone takes it: megabytes, taken sideways (EXIF orientation 6), with its make and position."""
    noise = Image.merge("RGB", [Image.effect_noise((width, height), 80) for _channel in range(3)])
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to show
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPSInfo: GPSLatitude
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=92, exif=exif)
    return out.getvalue()


def test_a_phone_photo_is_accepted_shrunk_turned_and_stripped(tmp_path):
    assert DEFAULTS["upload_max_bytes"] == 10 * 1024 * 1024
    assert DEFAULTS["photo_max_px"] == 512
    client = Client(make_app(tmp_path, upload_max_bytes=DEFAULTS["upload_max_bytes"]), admin=True)
    photo = phone_photo()
    assert len(photo) > 3 * 1024 * 1024
    assert opened(photo)[2][0x0112] == 6
    csrf, once = form_tokens(client, "/employees/new")
    fields = dict(NEW, csrf_token=csrf, form_token=once)
    added = client.post_form("/employees", fields, {"photo": ("IMG_0001.JPG", "image/jpeg", photo)})
    assert answer(added) == (303, "/employees/3", "Employee added.")
    served = client.get("/employees/3/photo")
    assert served.header("Content-Type") == "image/jpeg"
    image_format, size, exif = opened(served.body)
    assert (image_format, size) == ("JPEG", (384, 512))  # upright: taller than wide, longest side 512
    assert exif == {}  # no orientation, maker or position left
    assert len(served.body) < 200 * 1024


def test_the_photo_size_follows_the_setting_and_small_photos_stay_small(tmp_path):
    client = Client(make_app(tmp_path, photo_max_px=128, upload_max_bytes=10 * 1024 * 1024), admin=True)
    assert client.request("PUT", "/api/employees/1/photo", phone_photo(800, 600), "image/jpeg").status == 200
    assert opened(client.get("/employees/1/photo").body)[1] == (96, 128)
    assert client.request("PUT", "/api/employees/2/photo", image_bytes("PNG", (50, 20)), "image/png").status == 200
    assert opened(client.get("/employees/2/photo").body)[:2] == ("JPEG", (50, 20))
    transparent = image_bytes("PNG", (300, 150), (0, 0, 0, 0), mode="RGBA")
    assert client.request("PUT", "/api/employees/2/photo", transparent, "image/png").status == 200
    assert opened(client.get("/employees/2/photo").body)[:2] == ("PNG", (128, 64))


HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200


def test_a_heic_photo_is_refused_in_one_line(client):
    csrf, once = form_tokens(client, "/employees/new")
    fields = dict(NEW, csrf_token=csrf, form_token=once)
    refused = client.post_form("/employees", fields, {"photo": ("IMG_0002.HEIC", "image/heic", HEIC)})
    assert refused.status == 415
    assert f'<p class="error" id="photo-error">{html.escape(HEIC_REFUSED, quote=True)}</p>' in refused.text
    assert "\n" not in HEIC_REFUSED
    assert client.get("/api/employees").json()["count"] == 2
    for media_type in ("image/heic", "application/octet-stream"):
        api = client.request("PUT", "/api/employees/1/photo", HEIC, media_type)
        assert api.status == 415
    assert client.request("PUT", "/api/employees/1/photo", HEIC, "image/heic").json()["error"] == HEIC_REFUSED


def test_an_image_that_cannot_be_decoded_is_refused(client):
    broken = image_bytes("JPEG", (64, 64))[:200]
    result = client.request("PUT", "/api/employees/1/photo", broken, "image/jpeg")
    assert result.status == 422
    assert result.json()["error"] == UNREADABLE
