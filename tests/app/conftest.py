"""Fixtures of the employee-directory app tests."""

import http.server
import threading

import pytest
from directory_testing import Client, FakeIMDS, make_app


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


@pytest.fixture
def client(app):
    """The administrator: signed in, and sending HTTP Basic credentials to the API."""
    return Client(app, admin=True)


@pytest.fixture
def visitor(app):
    """Anyone the firewall lets in: not signed in, no credentials."""
    return Client(app)


@pytest.fixture
def imds():
    FakeIMDS.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeIMDS)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", FakeIMDS.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
