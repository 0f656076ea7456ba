"""Helpers that drive the employee directory through WSGI, on a temporary SQLite database or on a DynamoDB
table and S3 bucket of a moto server on 127.0.0.1 (the ``store`` fixture of conftest.py picks which)."""

import base64
import http.server
import io
import json
import re
import sqlite3
import sys
import time
import uuid
import wsgiref.util
from pathlib import Path
from typing import ClassVar

sys.dont_write_bytecode = True  # keep __pycache__ out of the role's files/
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "roles" / "webserver" / "files" / "app"))

from employee_directory.passwords import hash_password
from employee_directory.web import Application
from PIL import Image

ADMIN_PASSWORD = "correct horse battery staple"
# An employee the API tests add (not one of the seed employees).
NEW = {
    "name": "Katherine Johnson",
    "job_title": "Mathematician",
    "department": "Flight Research",
    "location": "Hampton",
    "email": "katherine@example.com",
}
# A cheap scrypt cost keeps the tests fast; the hash names its cost, so verification is the same code.
ADMIN_HASH = hash_password(ADMIN_PASSWORD, cost=2**10)

# The smallest GIF: one white pixel.
GIF_PIXEL = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"  # noqa: E501
SEED = [
    {
        "name": "Ada Lovelace",
        "job_title": "Analyst",
        "department": "Engineering",
        "location": "London",
        "email": "ada@example.com",
    },
    {
        "name": "Grace Hopper",
        "job_title": "Rear Admiral",
        "department": "Navy",
        "location": "Arlington",
        "email": "grace@example.com",
    },
]


def image_bytes(image_format, size, colour=(47, 110, 186), mode="RGB", **save):
    """An image made with Pillow (as Debian's python3-pil on the hosts), encoded as ``image_format``."""
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, image_format, **save)
    return out.getvalue()


def opened(data):
    """(format, size, EXIF tags) of the image ``data``, read back with Pillow."""
    with Image.open(io.BytesIO(data)) as image:
        return image.format, image.size, dict(image.getexif())


# Settings of the store every make_app of the running test uses (empty: SQLite in the test's tmp_path).
STORE = {}
# A metadata URL where nothing listens (the discard port on loopback): "no metadata service".
NO_METADATA = "http://127.0.0.1:9"


class Result:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8")

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return values[0] if values else None


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Client:
    """A tiny WSGI test client that keeps cookies like a browser.

    With ``admin`` it signs in through the sign-in page and sends HTTP Basic credentials
    with every request, as a browser of the administrator and an API client would.
    """

    def __init__(self, app, admin=False):
        self.app = app
        self.cookies = {}
        self.headers = {}
        if admin:
            self.sign_in()
            self.headers["Authorization"] = basic("admin", ADMIN_PASSWORD)

    def sign_in(self, password=ADMIN_PASSWORD, user="admin", next_page="/", environ=None):
        token = self.csrf_token("/signin")
        fields = {"username": user, "password": password, "csrf_token": token, "next": next_page}
        body, content_type = multipart(fields, {})
        return self.request("POST", "/signin", body, content_type, environ=environ)

    def request(self, method, path, body=b"", content_type=None, headers=None, cookies=True, environ=None):
        path, _question_mark, query = path.partition("?")
        extra_environ = environ
        environ = {
            "REQUEST_METHOD": method,
            # As gunicorn sees it behind nginx.
            "REMOTE_ADDR": "127.0.0.1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)) if body else "",
        }
        if content_type:
            environ["CONTENT_TYPE"] = content_type
        if cookies and self.cookies:
            environ["HTTP_COOKIE"] = "; ".join("{}={}".format(*item) for item in self.cookies.items())
        for name, value in dict(self.headers, **(headers or {})).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        environ.update(extra_environ or {})
        wsgiref.util.setup_testing_defaults(environ)
        captured = {}

        def start_response(status, response_headers):
            captured["status"] = int(status.split()[0])
            captured["headers"] = response_headers

        body_out = b"".join(self.app(environ, start_response))
        result = Result(captured["status"], captured["headers"], body_out)
        for key, value in result.headers:
            if key.lower() == "set-cookie":
                name, _equals, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
                if "Max-Age=0" in rest:
                    del self.cookies[name]
        return result

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def send_json(self, method, path, data):
        return self.request(method, path, json.dumps(data).encode(), "application/json")

    def csrf_token(self, path="/employees/new"):
        page = self.get(path)
        return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)

    def post_form(self, path, fields, files=None, cookies=True):
        body, content_type = multipart(fields, files or {})
        return self.request("POST", path, body, content_type, cookies=cookies)


def multipart(fields, files):
    """Encode a multipart/form-data body; files map name -> (filename, media type, bytes)."""
    boundary = uuid.uuid4().hex
    chunks = []
    for name, value in fields.items():
        chunks.append(
            b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
            % (boundary.encode(), name.encode(), value.encode("utf-8"))
        )
    for name, (filename, media_type, data) in files.items():
        chunks.append(
            b'--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\nContent-Type: %s\r\n\r\n%s\r\n'
            % (boundary.encode(), name.encode(), filename.encode(), media_type.encode(), data)
        )
    chunks.append(b"--%s--\r\n" % boundary.encode())
    return b"".join(chunks), "multipart/form-data; boundary=" + boundary


def make_app(tmp_path, **settings):
    config = {
        "database": str(tmp_path / "directory.sqlite3"),
        "secret_file": str(tmp_path / "csrf-secret"),
        "admin_password_file": str(tmp_path / "admin-password"),
        "seed": SEED,
        "metadata_url": NO_METADATA,
        "metadata_timeout": 0.5,
        "upload_max_bytes": 4096,
    }
    config.update(STORE)
    config.update(settings)
    password_file = Path(config["admin_password_file"])
    if not password_file.exists():
        password_file.write_text(ADMIN_HASH + "\n")
    return Application(config)


def set_updated_at(app, employee_id, value):
    """Backdate an employee's updated_at behind the app's back, in whichever store it uses."""
    if app.store.kind == "sqlite":
        with sqlite3.connect(app.settings["database"]) as conn:
            conn.execute("UPDATE employee SET updated_at = ? WHERE id = ?", (value, employee_id))
    else:
        app.store._dynamodb.update_item(
            TableName=app.store.table,
            Key={"pk": {"S": f"employee#{employee_id}"}},
            UpdateExpression="SET updated_at = :value",
            ExpressionAttributeValues={":value": {"S": value}},
        )


class FakeIMDS(http.server.BaseHTTPRequestHandler):
    """IMDSv2 on 127.0.0.1: a token from PUT, metadata (and the instance role's credentials) only with that token."""

    token = "test-token-123"
    # The instance role: its temporary credentials are served as EC2 serves them.
    role = "directory-instance-role"
    requests: ClassVar[list] = []

    def do_PUT(self):
        self.requests.append(("PUT", self.path))
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self._reply(200, self.token)
        else:
            self._reply(400, "bad token request")

    def do_GET(self):
        self.requests.append(("GET", self.path))
        if self.headers.get("X-aws-ec2-metadata-token") != self.token:
            self._reply(401, "")
        elif self.path == "/latest/meta-data/instance-id":
            self._reply(200, "i-0123456789abcdef0")
        elif self.path == "/latest/meta-data/placement/availability-zone":
            self._reply(200, "us-east-1b")
        elif self.path == "/latest/meta-data/iam/security-credentials/":
            self._reply(200, self.role)
        elif self.path == f"/latest/meta-data/iam/security-credentials/{self.role}":
            now = time.time()
            stamp = "%Y-%m-%dT%H:%M:%SZ"
            credentials = {
                "Code": "Success",
                "LastUpdated": time.strftime(stamp, time.gmtime(now)),
                "Type": "AWS-HMAC",
                "AccessKeyId": "ASIAFAKEINSTANCEROLE",
                "SecretAccessKey": "instance-role-secret",
                "Token": "instance-role-session-token",
                "Expiration": time.strftime(stamp, time.gmtime(now + 3600)),
            }
            self._reply(200, json.dumps(credentials))
        else:
            self._reply(404, "")

    def _reply(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass
