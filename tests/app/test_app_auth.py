"""Who may change the directory: reading is open, every change needs the administrator."""

import io
import re

import pytest
from directory_testing import ADMIN_PASSWORD, NEW, Client, basic, make_app
from employee_directory import auth, passwords


def names(client):
    return [e["name"] for e in client.get("/api/employees").json()["employees"]]


def test_reading_is_open_to_visitors(visitor):
    for path in ("/", "/employees/1", "/api/employees", "/api/employees/1", "/healthz", "/signin"):
        assert visitor.get(path).status == 200, path
    page = visitor.get("/employees/1").text
    assert "/employees/1/edit" not in page
    assert 'href="/signin?next=/employees/1"' in page


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/employees"),
        ("PUT", "/api/employees/1"),
        ("PATCH", "/api/employees/1"),
        ("DELETE", "/api/employees/1"),
        ("PUT", "/api/employees/1/photo"),
        ("DELETE", "/api/employees/1/photo"),
    ],
)
def test_api_changes_without_credentials_are_401_with_challenge(visitor, method, path):
    result = visitor.send_json(method, path, NEW)
    assert result.status == 401
    assert result.header("WWW-Authenticate") == 'Basic realm="Employee Directory", charset="UTF-8"'
    assert "HTTP Basic, user admin" in result.json()["error"]
    assert names(visitor) == ["Ada Lovelace", "Grace Hopper"]


@pytest.mark.parametrize(
    "credentials",
    [basic("admin", "wrong password!"), basic("root", ADMIN_PASSWORD), "Basic not-base64!", "Bearer abc"],
)
def test_api_refuses_wrong_credentials(visitor, credentials):
    result = visitor.request("DELETE", "/api/employees/1", headers={"Authorization": credentials})
    assert result.status == 401
    assert result.header("WWW-Authenticate").startswith("Basic ")
    assert names(visitor) == ["Ada Lovelace", "Grace Hopper"]


def test_api_accepts_the_administrator(visitor):
    visitor.headers["Authorization"] = basic("admin", ADMIN_PASSWORD)
    created = visitor.send_json("POST", "/api/employees", NEW)
    assert created.status == 201
    assert visitor.request("DELETE", created.json()["url"]).status == 204


def test_a_browser_session_does_not_authorise_the_api(app):
    browser = Client(app)
    assert browser.sign_in().status == 303
    assert browser.send_json("POST", "/api/employees", NEW).status == 401


def test_pages_that_change_things_send_visitors_to_sign_in(visitor):
    for path in ("/employees/new", "/employees/1/edit", "/employees/1/delete"):
        result = visitor.get(path)
        assert result.status == 303
        assert result.header("Location") == "/signin?next=" + path.replace("/", "%2F")


def test_form_posts_without_a_session_are_403_and_change_nothing(visitor):
    token = visitor.csrf_token("/signin")
    for path, fields in (("/employees", NEW), ("/employees/1", NEW), ("/employees/1/delete", {})):
        result = visitor.post_form(path, dict(fields, csrf_token=token))
        assert result.status == 403
        # The sign-in page, saying that nothing was saved.
        assert "<h1>Sign in</h1>" in result.text
        assert "Your session has ended, so nothing was saved yet." in result.text
    assert names(visitor) == ["Ada Lovelace", "Grace Hopper"]


def test_sign_in_sets_a_hardened_session_cookie_and_returns_to_the_page(visitor):
    result = visitor.sign_in(next_page="/employees/1/edit")
    assert result.status == 303
    assert result.header("Location") == "/employees/1/edit"
    cookie = next(v for k, v in result.headers if k == "Set-Cookie" and v.startswith("edir_session="))
    assert "; HttpOnly" in cookie
    assert "; SameSite=Lax" in cookie
    assert "Secure" not in cookie  # served over plain HTTP here
    page = visitor.get("/employees/1/edit")
    assert page.status == 200
    assert "Signed in." in page.text
    assert "Signed in." not in visitor.get("/").text  # a confirmation is shown once


def test_session_cookie_is_secure_behind_https(app):
    browser = Client(app)
    https = {"X-Forwarded-Proto": "https"}
    token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/signin", headers=https).text).group(1)
    fields = {"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token, "next": "/"}
    browser.headers.update(https)
    result = browser.post_form("/signin", fields)
    cookies = [v for k, v in result.headers if k == "Set-Cookie"]
    assert cookies
    assert all(cookie.endswith("; Secure") for cookie in cookies)


def test_sign_in_keeps_csrf(visitor):
    visitor.csrf_token("/signin")
    fields = {"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": "forged"}
    assert visitor.post_form("/signin", fields).status == 403
    assert "edir_session" not in visitor.cookies


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x"])
def test_sign_in_never_redirects_off_site(visitor, target):
    assert visitor.sign_in(next_page=target).header("Location") == "/"


def test_wrong_password_is_refused_with_a_message(visitor):
    result = visitor.sign_in(password="not the password")
    assert result.status == 403
    assert "Wrong user name or password." in result.text
    assert 'aria-describedby="signin-error"' in result.text
    assert "edir_session" not in visitor.cookies


def test_sign_out_ends_the_session(app):
    browser = Client(app)
    browser.sign_in()
    stolen = browser.cookies["edir_session"]
    token = browser.csrf_token("/")
    assert browser.post_form("/signout", {"csrf_token": token}).status == 303
    assert "edir_session" not in browser.cookies
    browser.cookies["edir_session"] = stolen  # the old cookie is worth nothing now
    assert browser.get("/employees/new").status == 303


def test_a_new_password_ends_every_session(tmp_path):
    app = make_app(tmp_path)
    browser = Client(app)
    browser.sign_in()
    assert browser.get("/employees/new").status == 200
    (tmp_path / "admin-password").write_text(passwords.hash_password("another password 123", cost=2**10))
    assert browser.get("/employees/new").status == 303


def test_without_a_password_file_nobody_can_change_anything(tmp_path):
    app = make_app(tmp_path)
    (tmp_path / "admin-password").unlink()
    browser = Client(app)
    assert "No administrator password is set" in browser.get("/signin").text
    assert browser.sign_in().status == 403
    assert browser.request("DELETE", "/api/employees/1", headers={"Authorization": basic("admin", "")}).status == 401


def test_failed_sign_ins_are_rate_limited_per_client(app):
    attacker = Client(app)
    for _attempt in range(auth.MAX_FAILURES):
        assert attacker.sign_in(password="guess guess guess").status == 403
    # Even the right password is refused now, so a limited client learns nothing from guessing.
    limited = attacker.sign_in()
    assert limited.status == 429
    assert int(limited.header("Retry-After")) > 0
    assert "Too many failed sign-ins" in limited.text
    api = attacker.request("DELETE", "/api/employees/1", headers={"Authorization": basic("admin", ADMIN_PASSWORD)})
    assert api.status == 429
    assert api.header("Retry-After")
    # Another address is not affected.
    assert Client(app).sign_in(environ={"REMOTE_ADDR": "192.0.2.7"}).status == 303


def test_rate_limit_is_shared_by_every_worker_and_expires(tmp_path):
    # Two Application objects on one database are two gunicorn workers.
    clock = [1_000_000.0]
    workers = [make_app(tmp_path), make_app(tmp_path)]
    for worker in workers:
        worker.admin.clock = lambda: clock[0]
    for attempt in range(auth.MAX_FAILURES):
        assert Client(workers[attempt % 2]).sign_in(password="guess guess guess").status == 403
    assert Client(workers[0]).sign_in().status == 429
    assert Client(workers[1]).sign_in().status == 429
    clock[0] += auth.WINDOW_SECONDS + 1
    assert Client(workers[1]).sign_in().status == 303
    assert workers[0].store.recent_failures("127.0.0.1", 0) == []  # a success clears the client's failures


def test_client_address_comes_from_nginx_only_over_loopback(app):
    outside = {"REMOTE_ADDR": "198.51.100.9"}
    for _attempt in range(auth.MAX_FAILURES):
        Client(app).sign_in(password="guess guess guess", environ=dict(outside, HTTP_X_REAL_IP="192.0.2.1"))
    # A client that is not nginx cannot escape its count by claiming another address.
    assert Client(app).sign_in(environ=dict(outside, HTTP_X_REAL_IP="192.0.2.2")).status == 429


def test_password_tool_stores_only_a_salted_hash(tmp_path, capsys):
    path = tmp_path / "hash"
    secret = "a long enough password"
    assert passwords.main([str(path)], io.StringIO(secret)) == passwords.EXIT_CHANGED
    stored = path.read_text()
    assert secret not in stored
    assert re.fullmatch(r"scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}\n", stored)
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert passwords.main([str(path)], io.StringIO(secret)) == passwords.EXIT_UNCHANGED
    assert path.read_text() == stored  # idempotent: the same password keeps the same hash
    assert passwords.main([str(path), "--check"], io.StringIO(secret + "!")) == passwords.EXIT_CHANGED
    assert path.read_text() == stored  # --check changes nothing
    assert passwords.hash_password(secret) != passwords.hash_password(secret)  # salted
    assert capsys.readouterr().out.split() == ["changed", "unchanged", "changed"]


def test_password_tool_refuses_a_short_password_and_changes_nothing(tmp_path, capsys):
    path = tmp_path / "hash"
    assert passwords.main([str(path)], io.StringIO("short pw 11")) == passwords.EXIT_REFUSED
    assert not path.exists()
    out = capsys.readouterr().out
    assert out == "refused: the password has 11 characters; at least 12 are needed\n"
    assert "short pw" not in out


def test_malformed_hashes_never_verify():
    for stored in ("", "plain", "scrypt$x$8$1$aa$bb", "pbkdf2$1$2$3$4$5", "scrypt$1024$8$1$!!$!!"):
        assert not passwords.verify_password("anything at all", stored)


def test_strict_transport_security_only_over_https(app):
    browser = Client(app)
    assert browser.get("/", headers={"X-Forwarded-Proto": "https"}).header("Strict-Transport-Security") == (
        "max-age=31536000"
    )
    assert browser.get("/").header("Strict-Transport-Security") is None
    # Only nginx (over loopback) says how the client came: anyone else claiming HTTPS is on plain HTTP.
    claimed = browser.get("/", headers={"X-Forwarded-Proto": "https"}, environ={"REMOTE_ADDR": "198.51.100.9"})
    assert claimed.header("Strict-Transport-Security") is None


def test_a_failed_sign_in_says_how_many_tries_are_left(app):
    client = Client(app)
    for left in range(auth.MAX_FAILURES - 1, 0, -1):
        failed = client.sign_in(password="guess guess guess")
        assert failed.status == 403
        tries = "1 try" if left == 1 else f"{left} tries"
        assert f"Wrong user name or password. {tries} left before a 15-minute pause." in failed.text
    last = client.sign_in(password="guess guess guess")
    assert "No tries left: sign in again in 15 minutes." in last.text
    assert client.sign_in().status == 429


def test_six_wrong_passwords_from_one_address_do_not_lock_out_another(app):
    behind_lb = {"REMOTE_ADDR": "127.0.0.1"}  # nginx, which gives the client's address in X-Real-IP
    for _attempt in range(auth.MAX_FAILURES + 1):
        Client(app).sign_in(password="guess guess guess", environ=dict(behind_lb, HTTP_X_REAL_IP="172.31.7.7"))
    assert Client(app).sign_in(environ=dict(behind_lb, HTTP_X_REAL_IP="172.31.7.7")).status == 429
    assert Client(app).sign_in(environ=dict(behind_lb, HTTP_X_REAL_IP="172.31.8.8")).status == 303


def test_the_account_has_a_far_higher_limit_over_every_address(app):
    clock = [2_000_000.0]
    app.admin.clock = lambda: clock[0]
    for n in range(auth.ACCOUNT_MAX_FAILURES):
        address = f"198.51.100.{n // (auth.MAX_FAILURES - 1)}"  # never more than a client's own limit
        assert Client(app).sign_in(password="guess", environ={"HTTP_X_REAL_IP": address}).status == 403
    fresh = Client(app).sign_in(environ={"HTTP_X_REAL_IP": "203.0.113.1"})
    assert fresh.status == 429
    assert "Too many failed sign-ins" in fresh.text
    clock[0] += auth.WINDOW_SECONDS + 1
    assert Client(app).sign_in(environ={"HTTP_X_REAL_IP": "203.0.113.1"}).status == 303
