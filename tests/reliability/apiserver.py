"""The sandbox's API front (moto + sandbox.middleware.Middleware) without hosts: no root, starts in a second.

Run as ``python tests/reliability/apiserver.py PORT``. It is the sandbox's own request path (fault
injection, ClientToken idempotency, duplicate image names, EC2 error XML) on 127.0.0.1, for the tests
that need the API and its faults but no real hosts. AMIs: the integration catalogue plus the
sandbox's Debian owner, from MOTO_AMIS_PATH set by the caller. ``POST /moto-api/reset`` also forgets
client tokens, faults and consistency windows. The sandbox's strict rules apply (limits, offerings,
CopyImage tokens), the consistency window included, with the sandbox's defaults (sandbox/strict.py: a
seeded 0-2 s per created resource, seed SANDBOX_EC_SEED; an explicit SANDBOX_EC_WINDOW wins), so a test
waits until what its own set-up created is visible before it observes or snapshots it (conftest.py:
``visible``, ``until_listed``). With SANDBOX_IAM_KEYS=FILE it also enforces IAM (users as the sandbox
makes them, policy docs/iam-policy.json) and writes their keys to FILE (JSON, 0600).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main(port: int) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    from sandbox import iam, moto_gaps, strict
    from sandbox.core import Core
    from sandbox.middleware import Middleware

    moto_gaps.apply()

    window, seed = strict.settings_from_env(os.environ)
    core = Core(port, {}, window=window, seed=seed)
    front = Middleware(DomainDispatcherApplication(create_backend_app), core)

    def app(environ, start_response):
        if environ.get("PATH_INFO") == "/moto-api/reset":
            core.tokens.clear()
            core.faults.clear()
            core.chaos.off()
            core.strict.consistency.reset()
            core.foreign_buckets.buckets.clear()
        return front(environ, start_response)

    srv = make_server("127.0.0.1", port, app, threaded=True)
    keys_file = os.environ.get("SANDBOX_IAM_KEYS")
    if keys_file:
        serving = threading.Thread(target=srv.serve_forever, daemon=True)
        serving.start()
        keys = core.enforce_iam(iam.POLICY_FILE.read_text())
        path = Path(keys_file)
        path.touch(mode=0o600)
        path.write_text(json.dumps(keys))
        serving.join()
    else:
        srv.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]))
