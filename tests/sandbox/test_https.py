"""HTTPS end to end on the sandbox (root, under the lock).

The shared flow (conftest.py's day_two: playbooks/flow.yml as the least-privilege user of docs/iam-policy.json, two
clones, the default store shared by both, HTTPS as by default), read before the pipeline's and the rollout's tests
change it: its load balancer listens on 443 with a certificate for its address, signed by the sandbox's own CA and
imported into ACM, and redirects port 80. Then, through that load balancer:
  - the summary prints ``https://<address>/`` and how to trust the CA;
  - ``http://`` answers 301 to the same place over HTTPS, and nothing else;
  - TLS follows the listener's security policy (1.2 and 1.3 by default; 1.3 only once the policy says so);
  - Debian's Chromium, trusting the sandbox's CA (and nothing else: no certificate error is ignored), signs in, adds
    and deletes an employee; its cookies are Secure, and the app sends Strict-Transport-Security;
  - six wrong passwords from one client address (the source instance's) do not lock out another (the controller).
The shared flow's teardown (load balancer and certificate included) is checked at the end of the session.
Bounded: each playbook and request has a deadline.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
from sandbox_helpers import DAY_TWO

from sandbox import net

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from probe import Probe

NAME = DAY_TWO
CHROMIUM = "/usr/bin/chromium"
CERTUTIL = "/usr/bin/certutil"
# One sign-in through the load balancer, run by the controller's Python or inside a host's network namespace: GET
# /signin (its CSRF cookie and token), then POST the password; prints the answer's status, cookies and HSTS header.
SIGN_IN = r"""
import http.client, json, re, ssl, sys, urllib.parse
address, ca, password = sys.argv[1:4]
conn = http.client.HTTPSConnection(address, 443, timeout=10, context=ssl.create_default_context(cafile=ca))
conn.request("GET", "/signin")
page = conn.getresponse()
body = page.read().decode()
cookie = "; ".join(v.split(";", 1)[0] for k, v in page.getheaders() if k.lower() == "set-cookie")
token = re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)
form = urllib.parse.urlencode({"username": "admin", "password": password, "csrf_token": token, "next": "/"})
conn.request("POST", "/signin", form, {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
answer = conn.getresponse()
text = answer.read().decode()
print(json.dumps({"status": answer.status, "hsts": answer.getheader("Strict-Transport-Security"),
                  "cookies": [v for k, v in answer.getheaders() if k.lower() == "set-cookie"],
                  "message": (re.findall(r"Wrong user name or password[^<]*|Too many failed sign-ins[^<]*", text)
                              or [""])[0]}))
"""


@pytest.fixture(scope="module")
def site(sandbox, day_two):
    """The shared flow (conftest.py's day_two: the flow's defaults, HTTPS among them), read before the pipeline and
    the rollout change it; what the tests need of it. Its teardown (the certificate included) is checked there."""
    ec2 = sandbox.client()
    sources = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [f"{NAME}-source"]},
                                              {"Name": "instance-state-name", "Values": ["running"]}])  # fmt: skip
    (source,) = [i for r in sources["Reservations"] for i in r["Instances"]]
    (address,) = re.findall(r"load balancer https://([0-9.]+)/", day_two.flow)
    return {
        "address": address,
        "ca": sandbox.env()["BAKERY_SANDBOX_CA"],
        "password": (day_two.workdir / "key.admin-password").read_text().strip(),
        "summary": day_two.flow,
        "source": source["InstanceId"],
        "workdir": day_two.workdir,
    }


def tls(ca: str, low: ssl.TLSVersion | None = None, high: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca)
    if low:
        context.minimum_version = low
    if high:
        context.maximum_version = high
    return context


def handshake(address: str, context: ssl.SSLContext) -> str:
    """The TLS version the load balancer agreed to, or the error that ended the handshake."""
    conn = http.client.HTTPSConnection(address, 443, timeout=10, context=context)
    try:
        conn.connect()
        return conn.sock.version()
    except (ssl.SSLError, OSError) as exc:
        return f"refused: {type(exc).__name__}"
    finally:
        conn.close()


def settled(address: str, context: ssl.SSLContext, wanted: str, timeout: float = 15) -> bool:
    """Whether handshakes agree to ``wanted`` within ``timeout`` seconds: a listener change takes effect shortly
    after ModifyListener answers, not as it answers (ELB's configuration is eventually consistent; in the sandbox,
    HAProxy's old worker may take a connection or two while it hands its sockets over to the new one)."""
    deadline = time.monotonic() + timeout
    while (seen := handshake(address, context)) != wanted:
        if time.monotonic() > deadline:
            raise AssertionError(f"handshakes still end {seen!r}, not {wanted!r}, {timeout} s after ModifyListener")
        time.sleep(0.5)
    return True


def sign_in(site: dict, password: str, namespace: str | None = None) -> dict:
    """One sign-in through the load balancer from the controller, or from inside a host's network namespace."""
    cmd = [sys.executable, "-c", SIGN_IN, site["address"], site["ca"], password]
    if namespace:
        cmd = ["ip", "netns", "exec", namespace, *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_the_summary_gives_the_https_address_and_how_to_trust_the_ca(site):
    url = f"https://{site['address']}/"
    assert f"load balancer {url} ({NAME}-lb" in site["summary"]
    assert f"curl --cacert {site['ca']} {url}" in site["summary"]


def test_plain_http_answers_only_a_redirect_to_https(site):
    conn = http.client.HTTPConnection(site["address"], 80, timeout=10)
    try:
        conn.request("GET", "/employees/new?next=%2F")
        answer = conn.getresponse()
        answer.read()
    finally:
        conn.close()
    assert answer.status == 301
    assert answer.getheader("Location") == f"https://{site['address']}:443/employees/new?next=%2F"
    assert answer.getheader("Set-Cookie") is None  # the app never saw it


def test_tls_versions_follow_the_listeners_security_policy(sandbox, site):
    address, ca = site["address"], site["ca"]
    assert handshake(address, tls(ca, high=ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"
    assert handshake(address, tls(ca)) == "TLSv1.3"
    assert handshake(address, tls(ca, high=ssl.TLSVersion.TLSv1_1)).startswith("refused")
    elbv2 = sandbox.client(service="elbv2")
    (lb,) = [x for x in elbv2.describe_load_balancers()["LoadBalancers"] if x["LoadBalancerName"] == f"{NAME}-lb"]
    (https,) = [x for x in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
                if x["Protocol"] == "HTTPS"]  # fmt: skip
    assert https["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    elbv2.modify_listener(ListenerArn=https["ListenerArn"], SslPolicy="ELBSecurityPolicy-TLS13-1-3-2021-06")
    try:
        assert settled(address, tls(ca, high=ssl.TLSVersion.TLSv1_2), "refused: SSLError")
        assert handshake(address, tls(ca)) == "TLSv1.3"
    finally:
        elbv2.modify_listener(ListenerArn=https["ListenerArn"], SslPolicy=https["SslPolicy"])
    assert settled(address, tls(ca, high=ssl.TLSVersion.TLSv1_2), "TLSv1.2")
    # A policy ELB does not have is refused, as ELB refuses it.
    with pytest.raises(elbv2.exceptions.SSLPolicyNotFoundException):
        elbv2.modify_listener(ListenerArn=https["ListenerArn"], SslPolicy="ELBSecurityPolicy-Made-Up")


def test_a_browser_trusting_the_sandbox_ca_signs_in_adds_and_deletes(site, tmp_path):
    """Chromium with the sandbox's CA in its certificate store (NSS, as a user imports a CA): no certificate error is
    ignored, so every page below was served over HTTPS the browser trusted."""
    for needed in (CHROMIUM, CERTUTIL):
        if not os.access(needed, os.X_OK):
            pytest.fail(f"{needed} is missing: run 'make test-sandbox', which installs it (chromium, libnss3-tools)")
    from playwright.sync_api import sync_playwright

    home = tmp_path / "home"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run([CERTUTIL, "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True, timeout=30)
    subprocess.run([CERTUTIL, "-A", "-d", f"sql:{nssdb}", "-n", "bakery sandbox CA", "-t", "C,,", "-i", site["ca"]],
                   check=True, timeout=30)  # fmt: skip
    base = f"https://{site['address']}"
    args = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--no-first-run",
            "--disable-component-update", "--disable-sync"]  # fmt: skip
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args, env=dict(os.environ, HOME=str(home)))
        try:
            for width, height in ((390, 844), (1280, 800)):  # a phone and a desktop
                context = browser.new_context(viewport={"width": width, "height": height})
                sign_in_add_and_delete(context.new_page(), base, site["password"])
                cookies = {c["name"]: c for c in context.cookies()}
                assert cookies["edir_session"]["secure"] and cookies["edir_session"]["httpOnly"]
                assert cookies["edir_session"]["sameSite"] == "Lax"
                context.close()
        finally:
            browser.close()


def sign_in_add_and_delete(page, base: str, password: str) -> None:
    name = f"Rosalind Franklin {uuid.uuid4().hex[:6]}"
    page.goto(base + "/")  # raises on a certificate the browser does not trust
    page.get_by_role("link", name="Sign in").first.click()
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    assert page.locator(".flash").inner_text() == "Signed in."
    page.get_by_role("link", name="Add employee").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Job title").fill("Chemist")
    page.get_by_label("Department").fill("Structural Biology")
    page.get_by_label("Location").fill("London")
    page.get_by_label("Email").fill(f"{name.split()[-1]}@example.com")
    page.get_by_role("button", name="Save").click()
    assert page.get_by_role("heading", level=1).inner_text() == name
    assert page.url.startswith(base + "/employees/")
    page.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete").click()
    assert page.locator(".flash").inner_text() == f"{name} was deleted."
    assert page.url == base + "/"


def test_cookies_are_secure_and_https_is_strict(site):
    signed_in = sign_in(site, site["password"])
    assert signed_in["status"] == 303
    assert signed_in["hsts"] == "max-age=31536000"
    session = [c for c in signed_in["cookies"] if c.startswith("edir_session=")]
    assert session
    assert all(part in session[0].split("; ") for part in ("Secure", "HttpOnly", "SameSite=Lax"))
    assert all("; Secure" in c for c in signed_in["cookies"])


def test_six_wrong_passwords_from_one_client_do_not_lock_out_another(site):
    """The source instance's address guesses six times through the load balancer and must wait; the controller (another
    address) still signs in: the app counts the client's own address (nginx believes the load balancer's
    X-Forwarded-For), not the load balancer's."""
    other = net.ns_name(site["source"])
    answers = [sign_in(site, "wrong password " + str(n), namespace=other) for n in range(6)]
    assert [a["status"] for a in answers] == [403] * 5 + [429], answers
    assert answers[0]["message"].startswith("Wrong user name or password. 4 tries left")
    assert "Too many failed sign-ins" in answers[-1]["message"]
    assert sign_in(site, site["password"], namespace=other)["status"] == 429  # that address waits, right or wrong
    assert sign_in(site, site["password"])["status"] == 303


def test_the_redirect_names_the_host_without_the_port_asked_on(site):
    conn = http.client.HTTPConnection(site["address"], 80, timeout=10)
    try:
        conn.request("GET", "/", headers={"Host": f"{site['address']}:80"})
        answer = conn.getresponse()
        answer.read()
    finally:
        conn.close()
    location = urllib.parse.urlsplit(answer.getheader("Location"))
    assert (answer.status, location.scheme, location.netloc, location.path, location.query) == (
        301, "https", f"{site['address']}:443", "/", "")  # fmt: skip


def test_the_keys_of_the_ca_and_of_the_certificate_are_private(site):
    """The CA's key beside ca.pem, and the key of the certificate signed for the load balancer's address, are
    readable by their owner only."""
    ca = Path(site["ca"])
    assert oct(ca.with_name("ca.key").stat().st_mode & 0o777) == "0o600"
    kept = ca.parent / "certs" / f"{site['address']}.key"
    assert oct(kept.stat().st_mode & 0o777) == "0o600"


def test_the_rollout_probe_speaks_https_to_the_load_balancer(site):
    """bench/probe.py, which watches rollouts (test_rollout.py, bench/rollout.py), over HTTPS with the CA trusted."""
    probe = Probe(site["address"], "/healthz", rate=10, limit=3, ca=site["ca"])
    probe.start()
    probe.join(10)
    figures = probe.stop()
    assert figures["failures"] == 0, figures["first_failures"]
    assert figures["requests"] >= 20, figures
