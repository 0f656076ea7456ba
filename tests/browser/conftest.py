"""The employee directory served as on a host (gunicorn behind nginx, with the role's site
configuration) on 127.0.0.1, behind a TLS front that does what the flow's load balancer does (HTTPS with a
certificate of a test CA, X-Forwarded-For and X-Forwarded-Proto to the host, which trusts them from 127.0.0.1 as the
role trusts the VPC's range), and Debian's Chromium driven by Playwright with that CA in its certificate store.

Nothing is downloaded: Playwright is told where Debian's chromium is (``make test-browser``
installs it, nginx and certutil, with apt when missing).
"""

import base64
import contextlib
import html
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jinja2
import pytest

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "webserver"
APP_DIR = ROLE / "files" / "app"
sys.path.insert(0, str(APP_DIR))
sys.dont_write_bytecode = True

from employee_directory.pages import human_size
from employee_directory.passwords import hash_password

sys.path.insert(0, str(ROOT))
from sandbox.acm import ensure_ca

sys.path.insert(0, str(ROOT / "playbooks" / "files"))
from sandbox_certificate import main as sign_certificate

LOGS = ROOT / ".build" / "browser"
CHROMIUM = "/usr/bin/chromium"
NGINX = "/usr/sbin/nginx"
CERTUTIL = "/usr/bin/certutil"
ADMIN_PASSWORD = "browser test password 42"
UPLOAD_MAX_BYTES = 1024 * 1024
PAGE_SIZE = 6
LONG_NAME = "Maria Wilhelmina Alexandra von Hohenzollern-Sigmaringen-Württemberg-Liechtenstein"
SEED = [
    {
        "name": LONG_NAME,
        "job_title": "Chief Executive Officer for Strategic Transformation and Operational Excellence",
        "department": "Office of the Chief Executive",
        "location": "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch",
        "email": "maria.wilhelmina.alexandra.von.hohenzollern-sigmaringen@subsidiary.example.com",
    },
    *(
        {
            "name": name,
            "job_title": title,
            "department": department,
            "location": place,
            "email": name.lower().replace(" ", ".").replace("'", "") + "@example.com",
        }
        for name, title, department, place in (
            ("Ada Lovelace", "Principal Engineer", "Engineering", "London"),
            ("Grace Hopper", "Director of Developer Tools", "Engineering", "Arlington"),
            ("Katherine Johnson", "Flight Dynamics Lead", "Research", "Hampton"),
            ("Alan Turing", "Head of Cryptanalysis", "Security", "Manchester"),
            ("Margaret Hamilton", "Director of Software Engineering", "Apollo", "Cambridge"),
            ("Dorothy Vaughan", "Supervisor, West Area Computing", "Research", "Hampton"),
            ("Radia Perlman", "Fellow", "Networking", "Seattle"),
        )
    ),
]
# Debian's chromium, headless, without anything that would reach out of the machine.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--metrics-recording-only",
]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answered at {url} within {timeout} s")


def _stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _nginx_site(app_port, http_port, read_timeout=30, trusted_proxies=()):
    """The role's own nginx site, rendered with the values the role would give it."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"), undefined=jinja2.StrictUndefined
    )
    return environment.get_template("nginx-site.conf.j2").render(
        ansible_managed="rendered by tests/browser",
        webserver_http_port=http_port,
        webserver_listen_ipv6=False,
        webserver_server_name="_",
        webserver_trusted_proxies=list(trusted_proxies),
        webserver_app_port=app_port,
        __webserver_request_max_bytes=UPLOAD_MAX_BYTES + 65536,
        __webserver_upload_max_text=human_size(UPLOAD_MAX_BYTES),
        __webserver_title_in_nginx="Employee Directory",
        __webserver_code_dir=str(APP_DIR),
        __webserver_proxy_read_timeout=read_timeout,
    )


def _tls_front(https_port, http_port, certificate):
    """What the flow's load balancer does in front of a host: TLS with ``certificate`` on ``https_port``, the client's
    address appended to X-Forwarded-For and X-Forwarded-Proto https, to the host's site on ``http_port``. The size of
    a request is left to the host's site, which answers an oversized photo with its own page."""
    return (
        "server {\n"
        f"    listen 127.0.0.1:{https_port} ssl;\n"
        f"    ssl_certificate {certificate['certificate']};\n"
        f"    ssl_certificate_key {certificate['private_key']};\n"
        "    ssl_protocols TLSv1.2 TLSv1.3;\n"
        "    client_max_body_size 0;\n"
        "    location / {\n"
        f"        proxy_pass http://127.0.0.1:{http_port};\n"
        "        proxy_set_header Host $http_host;\n"
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "        proxy_set_header X-Forwarded-Proto https;\n"
        "        proxy_request_buffering off;\n"
        "    }\n"
        "}\n"
    )


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    """A CA of the test run (made as the sandbox makes its own) and a certificate it signed for 127.0.0.1 (as the
    flow signs its load balancer's on the sandbox); urllib trusts the CA from here on."""
    work = tmp_path_factory.mktemp("ca")
    ca_file = ensure_ca(work / "ca.pem", work / "ca.key")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert sign_certificate(["--ca", str(ca_file), "--name", "127.0.0.1"]) == 0
    context = ssl.create_default_context(cafile=str(ca_file))
    urllib.request.install_opener(urllib.request.build_opener(urllib.request.HTTPSHandler(context=context)))
    return {"ca": ca_file, **json.loads(printed.getvalue())}


def _start_nginx(work, sites):
    """nginx serving the rendered ``sites`` (file name: text) from ``work``, started and checked."""
    for name, text in sites.items():
        (work / name).write_text(text)
    for temp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (work / temp).mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    temps = "".join(f"{kind}_temp_path {work / kind};\n" for kind in ("proxy", "fastcgi", "uwsgi", "scgi"))
    includes = "".join(f"include {work / name};\n" for name in sites)
    (work / "nginx.conf").write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {work / 'nginx.pid'};\nerror_log {work / 'nginx.log'};\n"
        "events {}\nhttp {\ninclude /etc/nginx/mime.types;\naccess_log off;\n"
        f"client_body_temp_path {work / 'body'};\n{temps}{includes}}}\n"
    )
    subprocess.run([NGINX, "-t", "-q", "-p", str(work), "-c", str(work / "nginx.conf")], check=True)
    return subprocess.Popen([NGINX, "-p", str(work), "-c", str(work / "nginx.conf")])


@pytest.fixture(scope="session")
def site(tmp_path_factory, test_ca):
    """Base URL (https://127.0.0.1:port) of the directory behind the TLS front and nginx; stopped at the end."""
    for needed in (CHROMIUM, NGINX):
        if not os.access(needed, os.X_OK):
            pytest.fail(f"{needed} is missing: run 'make test-browser', which installs it with apt")
    work = tmp_path_factory.mktemp("directory")
    (work / "admin-password").write_text(hash_password(ADMIN_PASSWORD) + "\n")
    config = {
        "title": "Employee Directory",
        "database": str(work / "directory.sqlite3"),
        "secret_file": str(work / "csrf-secret"),
        "admin_password_file": str(work / "admin-password"),
        "upload_max_bytes": UPLOAD_MAX_BYTES,
        "metadata_url": "http://127.0.0.1:9",
        "metadata_timeout": 0.2,
        "page_size": PAGE_SIZE,
        "seed": SEED,
    }
    (work / "config.json").write_text(json.dumps(config))
    app_port, http_port, https_port = _free_port(), _free_port(), _free_port()
    env = dict(os.environ, EMPLOYEE_DIRECTORY_CONFIG=str(work / "config.json"), PYTHONDONTWRITEBYTECODE="1")
    # As the role's unit runs it: two workers, so the sign-in limit must hold across processes.
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{app_port}", "--workers", "2", "--preload",
         "--pythonpath", str(APP_DIR), "--error-logfile", str(work / "gunicorn.log"),
         "employee_directory.wsgi:application"],
        env=env,
    )  # fmt: skip
    nginx = None
    try:
        _wait_for(f"http://127.0.0.1:{app_port}/healthz", gunicorn)
        sites = {
            "site.conf": _nginx_site(app_port, http_port, trusted_proxies=["127.0.0.1"]),
            "front.conf": _tls_front(https_port, http_port, test_ca),
        }
        nginx = _start_nginx(work, sites)
        _wait_for(f"https://127.0.0.1:{https_port}/healthz", nginx)
        yield f"https://127.0.0.1:{https_port}"
    finally:
        if nginx is not None:
            _stop(nginx)
        _stop(gunicorn)
        # Kept for a look after a failure.
        LOGS.mkdir(parents=True, exist_ok=True)
        for log in ("gunicorn.log", "nginx.log"):
            if (work / log).exists():
                shutil.copy(work / log, LOGS / log)


@pytest.fixture(scope="session")
def app_down(tmp_path_factory):
    """Base URLs of the role's nginx site in front of an app that is down: (nothing listens: 502, an app that
    takes connections and never answers: 504, after a read timeout of one second)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel accepts connections; nobody ever reads or answers them
    gone_port, slow_port = _free_port(), _free_port()
    # One nginx for each (the site defines variables of nginx's http block, once per configuration).
    servers = []
    try:
        for name, site in (
            ("gone", _nginx_site(_free_port(), gone_port)),
            ("slow", _nginx_site(silent.getsockname()[1], slow_port, read_timeout=1)),
        ):
            servers.append(_start_nginx(tmp_path_factory.mktemp(name), {"site.conf": site}))
        for port, nginx in zip((gone_port, slow_port), servers):
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or nginx.poll() is not None:
                        raise
                    time.sleep(0.1)
        yield f"http://127.0.0.1:{gone_port}", f"http://127.0.0.1:{slow_port}"
    finally:
        for nginx in servers:
            _stop(nginx)
        silent.close()


@pytest.fixture(scope="session")
def browser(tmp_path_factory, test_ca):
    """Chromium with the test CA in its certificate store (NSS, where a user imports a CA): no certificate error is
    ignored, so every https:// page was served over a connection the browser trusted."""
    from playwright.sync_api import sync_playwright

    if not os.access(CERTUTIL, os.X_OK):
        pytest.fail(f"{CERTUTIL} is missing: run 'make test-browser', which installs it with apt (libnss3-tools)")
    home = tmp_path_factory.mktemp("home")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run([CERTUTIL, "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True, timeout=30)
    subprocess.run([CERTUTIL, "-A", "-d", f"sql:{nssdb}", "-n", "bakery test CA", "-t", "C,,", "-i", test_ca["ca"]],
                   check=True, timeout=30)  # fmt: skip
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, env=dict(os.environ, HOME=str(home))
        )
        try:
            yield chromium
        finally:
            chromium.close()


# -- pages in the browser ---------------------------------------------------------------------------

SCREENSHOTS = Path(os.environ.get("BAKERY_SCREENSHOTS") or ROOT / ".build" / "browser" / "screenshots")
WIDTHS = {390: 844, 1280: 800}

# Every element whose box reaches past the right edge of the viewport (or past the left).
_OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [];
  for (const element of document.querySelectorAll("body *")) {
    const box = element.getBoundingClientRect();
    if (box.width === 0 || element.closest(".visually-hidden")) continue;
    if (box.right > width + 0.5 || box.left < -0.5) {
      wide.push(`${element.tagName.toLowerCase()}${element.id ? "#" + element.id : ""}.${element.className}: ` +
                `${Math.round(box.left)}..${Math.round(box.right)} > ${width}`);
    }
  }
  const scrolls = document.documentElement.scrollWidth;
  if (scrolls > width) wide.push(`page scrolls to ${scrolls}`);
  return wide;
}"""


_FRAME = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>
body { margin: 0; background: #dee1e6; font: 14px/1.2 "DejaVu Sans", sans-serif; }
.bar { padding: 7px 10px; }
.address { display: flex; align-items: center; gap: 8px; background: #fff; border-radius: 15px; padding: 6px 12px;
           color: #202124; white-space: nowrap; overflow: hidden; }
.address svg { flex: none; }
img { display: block; width: 100%; }
</style></head><body><div class="bar"><div class="address"><svg width="12" height="14" viewBox="0 0 12 14"
aria-hidden="true"><rect x="1" y="6" width="10" height="8" rx="1.5" fill="#5f6368"/><path d="M3.5 6V4a2.5 2.5 0 0 1 5
0v2" fill="none" stroke="#5f6368" stroke-width="1.6"/></svg><span>{url}</span></div></div>
<img alt="" src="data:image/png;base64,{png}"></body></html>"""


class Tab:
    """One page of a browser context that records script errors and checks each page it shows."""

    def __init__(self, context, base, width):
        self.page = context.new_page()
        self.base = base
        self.width = width
        self.errors = []
        self.page.on("pageerror", lambda error: self.errors.append(f"script error: {error}"))
        self.page.on("console", self._console)

    def _console(self, message):
        # An HTTP error answer the test asked for on purpose (401, 403, 413, 422) is logged by Chromium
        # as "Failed to load resource"; anything else at error level is a fault of the page.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(f"console error: {message.text}")

    def goto(self, path):
        return self.page.goto(self.base + path)

    def check(self, screenshot=None):
        self.page.wait_for_load_state("load")
        assert self.page.evaluate(_OVERFLOW) == [], f"wider than {self.width} px on {self.page.url}"
        assert self.errors == [], self.errors
        if screenshot:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shot = self.framed(self.page.screenshot(full_page=True))
            (SCREENSHOTS / f"{screenshot}-{self.width}.png").write_bytes(shot)

    def framed(self, shot):
        """The screenshot ``shot`` under an address bar that shows the page's address, as a browser window does
        (a headless browser draws none): the pictures say where the page came from, over HTTPS."""
        frame = self.page.context.new_page()
        try:
            frame.set_content(
                _FRAME.replace("{url}", html.escape(self.page.url)).replace("{png}", base64.b64encode(shot).decode())
            )
            frame.locator("img").evaluate("image => image.decode()")
            return frame.screenshot(full_page=True)
        finally:
            frame.close()

    def flash(self):
        return self.page.locator(".flash").inner_text()


@pytest.fixture(params=sorted(WIDTHS), ids=lambda width: f"{width}px")
def tab(request, browser, site):
    width = request.param
    context = browser.new_context(viewport={"width": width, "height": WIDTHS[width]}, device_scale_factor=1)
    try:
        yield Tab(context, site, width)
    finally:
        context.close()


def sign_in(tab):
    tab.page.get_by_role("link", name="Sign in").first.click()
    tab.page.get_by_label("Password").fill(ADMIN_PASSWORD)
    tab.page.get_by_role("button", name="Sign in").click()
    assert tab.flash() == "Signed in."


@pytest.fixture
def scriptless_admin(browser, site):
    """A tab of a browser with scripts off, at 390 px, signed in as the administrator."""
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    try:
        tab = Tab(context, site, 390)
        tab.goto("/signin")
        tab.page.get_by_label("Password").fill(ADMIN_PASSWORD)
        tab.page.get_by_role("button", name="Sign in").click()
        yield tab
    finally:
        context.close()
