"""python -m sandbox up|down|status|env  (serve: the background process itself)."""

from __future__ import annotations

import argparse
import sys

from .api import Sandbox
from .errors import SandboxError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="bakery.ec2 local EC2 sandbox")
    parser.add_argument("command", choices=["up", "down", "status", "env", "serve"])
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    box = Sandbox(port=args.port)
    try:
        if args.command == "up":
            box.up(say=lambda m: print(m, file=sys.stderr))
            print("\n".join(box.env_lines()))
        elif args.command == "down":
            box.down(say=lambda m: print(m, file=sys.stderr))
        elif args.command == "status":
            pid = box.pid()
            print(f"running (pid {pid}) on {box.endpoint}" if pid else "not running")
            return 0 if pid else 3
        elif args.command == "env":
            print("\n".join(box.env_lines()))
        elif args.command == "serve":
            from .server import serve

            serve(box.port)
    except SandboxError as exc:
        print(f"sandbox: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
