"""The sandbox's API front (moto + sandbox.core.Middleware) without hosts: no root, starts in a second.

Run as ``python tests/reliability/apiserver.py PORT``. It is the sandbox's own request path (fault
injection, ClientToken idempotency, duplicate image names, EC2 error XML) on 127.0.0.1, for the tests
that need the API and its faults but no real hosts. AMIs: the integration catalogue plus the
sandbox's Debian owner, from MOTO_AMIS_PATH set by the caller. ``POST /moto-api/reset`` also forgets
client tokens and faults.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main(port: int) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    from sandbox.core import Core, Middleware

    core = Core(port, {})
    front = Middleware(DomainDispatcherApplication(create_backend_app), core)

    def app(environ, start_response):
        if environ.get("PATH_INFO") == "/moto-api/reset":
            core.tokens.clear()
            core.faults.clear()
            core.chaos.off()
        return front(environ, start_response)

    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]))
