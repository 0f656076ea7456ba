"""The directory as people use it every day, on both stores: names in every script, many employees, double
clicks, sessions that end under a form, photos from phones."""

import re
import urllib.parse

import pytest
from directory_testing import NEW, Client, make_app

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
        if not department:
            found = world.get("/api/employees?" + urllib.parse.urlencode({"q": query})).json()["employees"]
            assert [employee["name"] for employee in found] == expected, query


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
