"""python -m sandbox up|down|status|env  (serve: the background process itself)."""

from __future__ import annotations

import argparse
import json
import sys

from . import config
from .api import Sandbox
from .errors import SandboxError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="bakery.ec2 local EC2 sandbox")
    parser.add_argument("command", choices=["up", "down", "status", "env", "admin-env", "serve", "chaos"])
    parser.add_argument("spec", nargs="?", help="chaos: a JSON spec (sandbox/faults.py), `off`, or none for status")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--faults", default=None, help="up: random faults from the start, a JSON spec (SANDBOX_FAULTS)")
    parser.add_argument(
        "--ec-window", default=None, help="up: eventual-consistency window, seconds (SANDBOX_EC_WINDOW)"
    )
    parser.add_argument("--ec-seed", default=None, help="up: seed of the windows (SANDBOX_EC_SEED)")
    args = parser.parse_args(argv)
    box = Sandbox(port=args.port)
    try:
        if args.command == "up":
            faults = json.loads(args.faults) if args.faults else None
            box.up(say=lambda m: print(m, file=sys.stderr), faults=faults, window=args.ec_window, seed=args.ec_seed)
            # the keys stay in the env files (mode 0600), never on the terminal
            print(f"env: {config.ENV_FILE} (least privilege); {config.ADMIN_ENV_FILE} (administrator)")
        elif args.command == "down":
            box.down(say=lambda m: print(m, file=sys.stderr))
        elif args.command == "status":
            pid = box.pid()
            print(f"running (pid {pid}) on {box.endpoint}" if pid else "not running")
            return 0 if pid else 3
        elif args.command in ("env", "admin-env"):
            print("\n".join(box.env_lines(admin=args.command == "admin-env")))
        elif args.command == "chaos":
            if args.spec == "off":
                out = box.chaos_off()
            elif args.spec:
                out = box.chaos(**json.loads(args.spec))
            else:
                out = box.chaos_status()
            print(json.dumps(out, indent=1))
        elif args.command == "serve":
            from .server import serve

            serve(box.port)
    except (SandboxError, ValueError) as exc:
        print(f"sandbox: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
