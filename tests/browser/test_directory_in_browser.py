"""The directory as its users meet it, in Debian's Chromium at phone and desktop widths.

Each width signs in, adds an employee with a photo, edits, searches and deletes, through the
pages only. After every page: nothing is wider than the screen, and the page logged no script
error (a Content-Security-Policy violation is one). Screenshots go to .build/browser/screenshots/, so that a
test run leaves the checkout as it was; `make screenshots` takes them into docs/screenshots/ (BAKERY_SCREENSHOTS).
"""

import base64
import json
import re
import struct
import urllib.error
import urllib.request
import zlib

from conftest import ADMIN_PASSWORD, LONG_NAME, PAGE_SIZE, ROOT, SEED, UPLOAD_MAX_BYTES, sign_in

DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"


def png(width, height, rgb):
    """A PNG fading from ``rgb`` to white, made here (no image library needed)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def shade(row):
        return bytes(value + (255 - value) * row // (2 * height) for value in rgb)

    rows = b"".join(b"\x00" + shade(row) * width for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_sign_in_add_edit_search_and_delete(tab, tmp_path):
    page = tab.page
    tag = f"w{tab.width}"
    name = f"Rosalind Franklin {tag}"

    tab.goto("/")
    assert page.get_by_role("heading", level=1).inner_text() == "Employees"
    assert page.locator(".card").count() == PAGE_SIZE
    assert page.get_by_text(f"{len(SEED)} employees, showing 1 to {PAGE_SIZE}").is_visible()
    assert page.get_by_role("link", name="Add employee").count() == 0  # visitors only read
    tab.check("list")

    page.get_by_role("link", name="Next").click()
    assert "Page 2 of 2" in page.locator(".pager").inner_text()
    tab.check()

    sign_in(tab)
    tab.check()
    # Through the TLS front, as through the load balancer: the host knew the visitor came over HTTPS.
    assert page.url.startswith("https://")
    session = {cookie["name"]: cookie for cookie in page.context.cookies()}["edir_session"]
    assert (session["secure"], session["httpOnly"], session["sameSite"]) == (True, True, "Lax")
    assert tab.goto("/").headers["strict-transport-security"] == "max-age=31536000"

    # Add, with a photo.
    photo = tmp_path / "rosalind.png"
    photo.write_bytes(png(96, 96, (47, 110, 186)))
    page.get_by_role("link", name="Add employee").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Job title").fill("Chemist and X-ray crystallographer")
    page.get_by_label("Department").fill("Structural Biology")
    page.get_by_label("Location").fill("London")
    page.get_by_label("Email").fill(f"rosalind.{tag}@example.com")
    page.get_by_label("Photo").set_input_files(str(photo))
    tab.check("form")
    page.get_by_role("button", name="Save").click()
    assert tab.flash() == "Employee added."
    assert page.get_by_role("heading", level=1).inner_text() == name
    portrait = page.get_by_role("img", name=f"Photo of {name}")
    assert portrait.evaluate("image => image.complete && image.naturalWidth") == 96
    detail_url = page.url
    tab.check("employee")

    # Edit.
    page.get_by_role("link", name="Edit").click()
    assert page.get_by_label("Name").input_value() == name
    page.get_by_label("Job title").fill("Senior Research Associate")
    page.get_by_role("button", name="Save").click()
    assert tab.flash() == "Changes saved."
    assert page.get_by_text("Senior Research Associate").is_visible()
    tab.check()

    # A photo over the limit is refused in the page, before anything is sent or lost.
    big = tmp_path / "big.png"
    big.write_bytes(png(8, 8, (0, 0, 0)) + b"\x00" * UPLOAD_MAX_BYTES)
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Location").fill("Paris")
    page.get_by_label("Photo").set_input_files(str(big))
    assert page.locator("#photo-error").inner_text() == "This photo is too large: choose one of at most 1 MiB."
    tab.check("form-error")
    page.get_by_role("button", name="Save").click()
    assert page.url.endswith("/edit")  # not sent
    assert page.get_by_label("Location").input_value() == "Paris"
    tab.check()
    page.get_by_role("link", name="Cancel").click()
    assert page.url == detail_url

    # The way back, and search.
    page.get_by_role("link", name="All employees").click()
    page.get_by_role("searchbox").fill(tag)
    page.get_by_role("button", name="Search").click()
    assert page.locator(".card").count() == 1
    assert page.get_by_text(f"1 result for \u201c{tag}\u201d").is_visible()
    tab.check("search")

    # The long seeded name wraps inside its card.
    page.get_by_role("searchbox").fill("Hohenzollern")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=LONG_NAME).click()
    tab.check("long-name")
    page.get_by_role("link", name="All employees").click()

    # Delete, after a confirm step.
    page.goto(detail_url)
    page.get_by_role("link", name="Delete").click()
    assert page.get_by_role("heading", level=1).inner_text() == f"Delete {name}?"
    tab.check("delete")
    page.get_by_role("button", name="Delete").click()
    assert tab.flash() == f"{name} was deleted."
    page.get_by_role("searchbox").fill(tag)
    page.get_by_role("button", name="Search").click()
    assert page.get_by_text("No employees found.").is_visible()
    tab.check()

    page.get_by_role("button", name="Sign out").click()
    assert tab.flash() == "Signed out."
    tab.check()


# Each visible input's border colour, its own background and the background around it, as the browser computes them.
_INPUT_COLOURS = """() => {
  const solid = (element) => {
    for (; element; element = element.parentElement) {
      const colour = getComputedStyle(element).backgroundColor;
      if (colour !== "rgba(0, 0, 0, 0)" && colour !== "transparent") return colour;
    }
    return "rgb(255, 255, 255)";
  };
  return [...document.querySelectorAll("input:not([type=hidden])")]
    .filter((input) => input.getBoundingClientRect().width > 0)
    .map((input) => ({name: input.name, border: getComputedStyle(input).borderTopColor,
                      inside: solid(input), outside: solid(input.parentElement)}));
}"""


def contrast(first, second):
    """WCAG 2 contrast ratio of two CSS ``rgb(...)`` colours."""

    def luminance(colour):
        channels = [int(v) / 255 for v in re.findall(r"\d+", colour)[:3]]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_input_borders_have_at_least_3_to_1_contrast(tab):
    """WCAG 1.4.11: an input's border against the input and against what surrounds it, on both forms.

    Before test_api_needs_basic_auth_and_limits_failures_across_workers, whose failed sign-ins block this client.
    """
    tab.goto("/signin")
    seen = tab.page.evaluate(_INPUT_COLOURS)
    tab.page.get_by_label("Password").fill(ADMIN_PASSWORD)
    tab.page.get_by_role("button", name="Sign in").click()
    tab.goto("/employees/new")
    seen += tab.page.evaluate(_INPUT_COLOURS)
    assert {field["name"] for field in seen} >= {"password", "name", "email", "photo"}, seen
    for field in seen:
        for side in ("inside", "outside"):
            ratio = contrast(field["border"], field[side])
            assert ratio >= 3, f"{field['name']}: border {field['border']} on {field[side]} is {ratio:.2f}:1"


def test_oversized_upload_without_script_gets_a_page_stating_the_limit(scriptless_admin, tmp_path):
    # Without scripts the browser sends the photo; nginx refuses it before the app sees it.
    tab = scriptless_admin
    page = tab.page
    tab.goto("/employees/new")
    typed = {"Name": "Hedy Lamarr", "Job title": "Inventor", "Department": "Research", "Location": "Vienna"}
    for label, value in typed.items():
        page.get_by_label(label).fill(value)
    page.get_by_label("Email").fill("hedy@example.com")
    big = tmp_path / "big.png"
    big.write_bytes(png(8, 8, (0, 0, 0)) + b"\x00" * (UPLOAD_MAX_BYTES + 100 * 1024))
    page.get_by_label("Photo").set_input_files(str(big))
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Save").click()
    answer = navigation.value
    assert answer.status == 413
    assert answer.headers["content-type"].startswith("text/html")
    assert page.get_by_role("heading", level=1).inner_text() == "413 · Photo too large"
    assert page.get_by_text("Photos can be at most 1 MiB.").is_visible()
    tab.check("too-large")
    # Back at the form, what was typed is still there.
    page.go_back()
    for label, value in typed.items():
        assert page.get_by_label(label).input_value() == value
    tab.goto("/?q=Hedy")
    assert page.get_by_text("No employees found.").is_visible()


def test_api_needs_basic_auth_and_limits_failures_across_workers(site):
    """Through nginx: writes need HTTP Basic; failures count per client, whichever worker answers."""

    def delete(credentials=None):
        request = urllib.request.Request(f"{site}/api/employees/2", method="DELETE")
        if credentials:
            request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), b""
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    status, headers, body = delete()
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic ")
    assert "HTTP Basic, user admin" in json.loads(body)["error"]
    statuses = [delete(f"admin:wrong guess {n}")[0] for n in range(6)]
    assert statuses == [401] * 5 + [429]
    status, headers, _body = delete(f"admin:{ADMIN_PASSWORD}")
    assert status == 429  # even the right password, until the window passes
    assert int(headers["Retry-After"]) > 0


def test_screenshot_is_shown_in_the_readme():
    shown = re.findall(r"!\[[^\]]+\]\(docs/screenshots/([^)]+\.png)\)", (ROOT / "README.md").read_text())
    assert shown
    for name in shown:
        assert (DOCS_SCREENSHOTS / name).is_file(), name
