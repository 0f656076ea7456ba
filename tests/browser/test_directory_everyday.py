"""What people do every day with the directory, in Debian's Chromium at 390 and 1280 px: a double click on
Save, a form left open until the session ended, a phone's photo, every error at once, many pages, a
department, an app that is down. Runs before test_directory_in_browser.py, whose last test blocks this
client's sign-ins."""

import base64
import io
import json
import urllib.request

import pytest
from conftest import ADMIN_PASSWORD, LONG_NAME, SEED, WIDTHS, Tab, sign_in
from PIL import Image


@pytest.fixture(autouse=True)
def leaves_the_seed_as_it_was(site):
    """test_directory_in_browser.py counts the seed employees and takes the README's pictures of them: delete whoever
    a test added, and put back what a test changed."""
    yield
    with urllib.request.urlopen(f"{site}/api/employees", timeout=30) as response:
        employees = json.load(response)["employees"]
    credentials = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    seeded = {employee["email"]: employee for employee in SEED}
    for employee in employees:
        if employee["email"] not in seeded:
            request = urllib.request.Request(f"{site}{employee['url']}", method="DELETE")
        else:
            body = json.dumps(seeded[employee["email"]]).encode()
            request = urllib.request.Request(f"{site}{employee['url']}", body, method="PUT")
            request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", "Basic " + credentials)
        urllib.request.urlopen(request, timeout=30).close()


def add_form(tab, name, email):
    page = tab.page
    tab.goto("/employees/new")
    for label, value in (("Name", name), ("Job title", "Engineer"), ("Department", "Research")):
        page.get_by_label(label).fill(value)
    page.get_by_label("Location").fill("Lyon")
    page.get_by_label("Email").fill(email)


def cards_named(tab, text):
    tab.goto("/?q=" + text.replace(" ", "+"))
    return tab.page.locator(".card").count()


def test_a_second_click_on_save_sends_nothing(tab):
    page = tab.page
    tab.goto("/")
    sign_in(tab)
    posts = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    name = f"Second Click {tab.width}"
    add_form(tab, name, f"second.click.{tab.width}@example.com")
    # Two clicks before any answer can come, as on a slow network: the first disables the button.
    with page.expect_navigation():
        disabled = page.locator("form.edit button[type=submit]").evaluate(
            "button => { button.click(); const disabled = button.disabled; button.click(); return disabled; }"
        )
    assert disabled
    assert tab.flash() == "Employee added."
    assert len(posts) == 1, posts
    tab.check()
    assert cards_named(tab, name) == 1


def test_without_script_a_form_sent_twice_is_answered_as_the_first(scriptless_admin):
    tab = scriptless_admin
    page = tab.page
    add_form(tab, "No Script Twice", "noscript.twice@example.com")
    page.get_by_role("button", name="Save").click()
    assert tab.flash() == "Employee added."
    added = page.url
    # Back to the form as the browser kept it, and Save again: the same answer, no second employee.
    page.go_back()
    assert page.get_by_label("Name").input_value() == "No Script Twice"
    page.get_by_role("button", name="Save").click()
    assert page.url == added
    assert tab.flash() == "Employee added."
    assert cards_named(tab, "No Script Twice") == 1


def test_every_field_error_shows_at_once(tab):
    page = tab.page
    tab.goto("/")
    sign_in(tab)
    tab.goto("/employees/new")
    page.get_by_label("Email").fill("not an address")
    page.get_by_role("button", name="Save").click()
    assert page.url.endswith("/employees/new")  # not sent
    errors = page.locator("p.error:visible")
    assert errors.all_inner_texts() == [
        "Name is required.",
        "Job title is required.",
        "Department is required.",
        "Location is required.",
        "Email must be an address like name@example.com.",
    ]
    assert page.locator('[aria-invalid="true"]').count() == 5
    assert page.evaluate("document.activeElement.id") == "name"
    tab.check("form-errors")
    page.get_by_label("Name").fill("Corrected")
    assert page.locator("#name-error").inner_text() == ""


def test_an_edit_survives_the_end_of_the_session(tab):
    page = tab.page
    tab.goto("/employees/2")
    # The header's Sign in comes back to this page.
    sign_in(tab)
    assert page.url.endswith("/employees/2")
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Location").fill(f"Geneva {tab.width}")
    # The session ends while the form is open (as after 12 hours).
    page.context.clear_cookies(name="edir_session")
    page.get_by_role("button", name="Save").click()
    assert "Your session has ended, so nothing was saved yet." in page.locator("main").inner_text()
    tab.check("session-ended")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    assert page.url.endswith("/employees/2/edit")
    assert page.get_by_label("Location").input_value() == f"Geneva {tab.width}"
    tab.check("form-restored")
    page.get_by_role("button", name="Save").click()
    assert tab.flash() == "Changes saved."
    assert page.get_by_text(f"Geneva {tab.width}").is_visible()


def test_cancel_on_the_sign_in_page_goes_back_where_the_visitor_was(tab):
    page = tab.page
    tab.goto("/employees/3")
    page.get_by_role("link", name="Sign in").first.click()
    page.get_by_role("link", name="Cancel").click()
    assert page.url == tab.base + "/employees/3"


def test_a_phone_photo_is_shown_small_and_upright(tab, tmp_path):
    page = tab.page
    tab.goto("/")
    sign_in(tab)
    # 1600 x 1200 as the camera stored it, to be turned upright (EXIF orientation 6): 384 x 512 once shrunk.
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    Image.merge("RGB", [Image.effect_noise((1600, 1200), 60) for _channel in range(3)]).save(out, "JPEG", exif=exif)
    photo = tmp_path / "IMG_0042.JPG"
    photo.write_bytes(out.getvalue())
    add_form(tab, f"Phone Photo {tab.width}", f"phone.{tab.width}@example.com")
    page.get_by_label("Photo").set_input_files(str(photo))
    page.get_by_role("button", name="Save").click()
    assert tab.flash() == "Employee added."
    portrait = page.get_by_role("img", name=f"Photo of Phone Photo {tab.width}")
    assert portrait.evaluate("image => [image.naturalWidth, image.naturalHeight]") == [384, 512]
    tab.check()


def test_pages_department_filter_and_cards(tab):
    page = tab.page
    tab.goto("/")
    pager = page.get_by_role("navigation", name="Pages")
    assert pager.get_by_role("link", name="Page 2").is_visible()
    assert pager.locator('[aria-current="page"]').inner_text() == "1"
    # Every card shows the email.
    assert page.locator(".card .email").first.inner_text() == "ada.lovelace@example.com"
    page.get_by_label("Department").select_option("Research")
    page.get_by_role("button", name="Search").click()
    assert page.locator(".card").count() >= 2
    assert "in Research" in page.locator(".summary").inner_text()
    tab.check("department")


def test_a_long_name_does_not_stretch_its_row(tab):
    for number in range(1, 10):
        tab.goto(f"/?page={number}")
        long_card = tab.page.locator(".card", has_text=LONG_NAME[:20])
        if long_card.count():
            break
    assert long_card.count() == 1
    heights = tab.page.locator(".card").evaluate_all("cards => cards.map((card) => card.offsetHeight)")
    assert len(heights) > 1
    # Two lines of name at most: no card is more than a line taller than the shortest.
    assert max(heights) - min(heights) <= 26, heights
    assert long_card.locator("strong").get_attribute("dir") == "auto"
    tab.check("long-name-card")


def test_the_search_placeholder_fits_its_box(tab):
    tab.goto("/")
    fits = tab.page.locator("#q").evaluate(
        """(input) => {
          const style = getComputedStyle(input);
          const context = document.createElement("canvas").getContext("2d");
          context.font = style.font;
          const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
          return [context.measureText(input.placeholder).width, room];
        }"""
    )
    assert fits[0] <= fits[1], f"placeholder {fits[0]:.0f} px in {fits[1]:.0f} px"


def test_an_app_that_is_down_gets_styled_pages(browser, app_down):
    for width in sorted(WIDTHS):
        context = browser.new_context(viewport={"width": width, "height": WIDTHS[width]})
        try:
            for base, status, heading, shot in (
                (app_down[0], 502, "502 · Bad Gateway", "bad-gateway"),
                (app_down[1], 504, "504 · Gateway Timeout", "gateway-timeout"),
            ):
                tab = Tab(context, base, width)
                answer = tab.goto("/employees/1")
                assert answer.status == status
                assert answer.headers["retry-after"] == "10"
                page = tab.page
                assert page.get_by_role("heading", level=1).inner_text() == heading
                assert "Please try again in a minute." in page.locator("main").inner_text()
                # Styled like the app's pages: the style sheet came (served by nginx from disk).
                header = page.locator("header").evaluate("e => getComputedStyle(e).backgroundColor")
                assert header == "rgb(255, 255, 255)"
                assert page.locator(".brand").evaluate("e => getComputedStyle(e).fontWeight") == "700"
                tab.check(shot)
                tab.page.close()
        finally:
            context.close()
