"""Helpers that drive the employee directory through WSGI, with a temporary SQLite database."""

import http.server
import io
import json
import re
import sys
import uuid
import wsgiref.util
from pathlib import Path
from typing import ClassVar

sys.dont_write_bytecode = True  # keep __pycache__ out of the role's files/
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "roles" / "webserver" / "files" / "app"))

from employee_directory.web import Application

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


class Client:
    """A tiny WSGI test client that keeps cookies like a browser."""

    def __init__(self, app):
        self.app = app
        self.cookies = {}

    def request(self, method, path, body=b"", content_type=None, headers=None, cookies=True):
        path, _question_mark, query = path.partition("?")
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)) if body else "",
        }
        if content_type:
            environ["CONTENT_TYPE"] = content_type
        if cookies and self.cookies:
            environ["HTTP_COOKIE"] = "; ".join("{}={}".format(*item) for item in self.cookies.items())
        for name, value in (headers or {}).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
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
        "seed": SEED,
        "metadata_url": NO_METADATA,
        "metadata_timeout": 0.5,
        "upload_max_bytes": 4096,
    }
    config.update(settings)
    return Application(config)


class FakeIMDS(http.server.BaseHTTPRequestHandler):
    """IMDSv2 on 127.0.0.1: a token from PUT, metadata only with that token."""

    token = "test-token-123"
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
