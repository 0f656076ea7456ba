"""Python API: Sandbox().up() / .down() / .client(); used by `python -m sandbox` and the pytest fixture."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import config, elb, images, server, strict
from .errors import SandboxError


def _alive(pid: int) -> bool:
    """The process runs (a zombie waiting for its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


class Sandbox:
    def __init__(self, port: int | None = None):
        self.port = port or config.PORT
        self.endpoint = config.endpoint(self.port)
        # What hosts use for DynamoDB, S3 and STS (BAKERY_SANDBOX_GUEST_ENDPOINT): only they reach it.
        self.guest_endpoint = config.guest_endpoint(self.port)

    # ------------------------------------------------------------ facts
    def pid(self) -> int | None:
        return server.running_pid()

    def env(self, admin: bool = False) -> dict[str, str]:
        """The least-privilege user's environment (``admin=True``: the administrator's, for tests only)."""
        return dict(line.removeprefix("export ").split("=", 1) for line in self.env_lines(admin))

    def env_lines(self, admin: bool = False) -> list[str]:
        path = config.STATE_DIR / ("admin.env" if admin else "env")
        try:
            return path.read_text().split("\n")[:-1]
        except OSError:
            raise SandboxError(f"{path} is missing: is the sandbox running? (`make sandbox`)") from None

    def answers(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=10).read()  # noqa: S310 - 127.0.0.1 only
            return True
        except (urllib.error.URLError, OSError):
            return False

    def client(self, region: str = config.REGION, service: str = "ec2", admin: bool = True):
        """A boto3 client as the administrator (tests, inspection) or as the least-privilege user."""
        import boto3

        env = self.env(admin=admin)
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.endpoint,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )

    def _control(self, path: str, method: str = "GET", data: dict | None = None) -> dict:
        body = json.dumps(data).encode() if data is not None else None
        req = urllib.request.Request(self.endpoint + path, data=body, method=method)  # noqa: S310 - 127.0.0.1
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - 127.0.0.1 only
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise SandboxError(f"{method} {path}: {exc.read().decode(errors='replace')}") from None

    def status(self) -> dict:
        """Hosts (state, private IP, region), pending images and active faults of the running sandbox."""
        return self._control("/_sandbox/status")

    def inject_fault(
        self,
        action: str = "*",
        code: str = "RequestLimitExceeded",
        status: int = 503,
        count: int = 1,
        seconds: float = 60,
        access_key: str | None = None,
        zone: str | None = None,
    ) -> dict:
        """Make the next `count` calls of `action` fail with EC2 error `code` (bounded by `seconds`).

        With `access_key`, only requests signed with that key ID are failed. With `zone`, the next `count`
        RunInstances into that zone fail with InsufficientInstanceCapacity (an unknown zone: SandboxError).
        """
        spec = {"action": action, "code": code, "status": status, "count": count, "seconds": seconds}
        if zone:
            spec["zone"] = zone
        return self._control("/_sandbox/faults", "POST", dict(spec, access_key=access_key))

    def clear_faults(self) -> None:
        self._control("/_sandbox/faults", "DELETE")

    def foreign_bucket(self, bucket: str, account: str, region: str = "us-east-1") -> dict:
        """Make S3 bucket ``bucket`` in another AWS account (12 digits): this account's requests naming it are
        refused as AWS refuses them (sandbox/s3.py)."""
        spec = {"bucket": bucket, "account": account, "region": region}
        return self._control("/_sandbox/foreign-buckets", "POST", spec)

    def chaos(self, **spec) -> dict:
        """Random, seeded, bounded faults on every API request (see sandbox/faults.py for the options)."""
        return self._control("/_sandbox/chaos", "POST", spec)

    def chaos_off(self) -> dict:
        """Stop random faults; returns the final status with the counts of what was injected."""
        return self._control("/_sandbox/chaos", "DELETE")

    def chaos_status(self) -> dict:
        return self._control("/_sandbox/chaos")

    # ------------------------------------------------------------ start / stop
    def up(self, say=print, timeout: float = 60, faults: dict | None = None, window=None, seed=None) -> None:
        """Start the sandbox (or reuse a running one); ``faults``: a chaos spec applied from the start.

        ``window``/``seed``: the eventual-consistency settings (default: SANDBOX_EC_WINDOW, SANDBOX_EC_SEED).
        """
        server.check_root()
        env = dict(os.environ, SANDBOX_PORT=str(self.port), PYTHONUNBUFFERED="1")
        if window is not None:
            env["SANDBOX_EC_WINDOW"] = str(window)
        if seed is not None:
            env["SANDBOX_EC_SEED"] = str(seed)
        strict.settings_from_env(env)  # a bad value is one line here, before anything starts
        elb.provisioning_from_env(env)
        pid = self.pid()
        if pid:
            if self.answers():
                say(f"sandbox already running (pid {pid}) on {self.endpoint}")
                self._write_env()
                return
            raise SandboxError(
                f"sandbox process {pid} exists but {self.endpoint} does not answer: run `make sandbox-down`"
            )
        server.check_tools()
        server.check_kernel()
        server.check_port(self.port)
        if config.RECORD_FILE.exists():
            say("cleaning up after a previous sandbox that did not stop cleanly")
            server.teardown()
        # Build (or reuse) the base images in the foreground, in parallel, so failures are visible here.
        with ThreadPoolExecutor(len(images.RECIPES)) as pool:
            for fut in [pool.submit(images.ensure_image, r, say) for r in images.RECIPES]:
                fut.result()
        config.STATE_DIR.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        if faults is not None:
            env["SANDBOX_FAULTS"] = json.dumps(faults)
        if env.get("SANDBOX_FAULTS"):
            from .faults import parse_chaos

            try:
                parse_chaos(json.loads(env["SANDBOX_FAULTS"]))
            except (ValueError, TypeError) as exc:
                raise SandboxError(f"SANDBOX_FAULTS: {exc}") from None
        root = str(config.REPO_ROOT)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with open(config.LOG_FILE, "ab") as logf:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sandbox", "serve", "--port", str(self.port)],
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while time.monotonic() - start < timeout:
            if proc.poll() is not None:
                tail = config.LOG_FILE.read_text(errors="replace").strip().splitlines()[-5:]
                server.teardown()
                raise SandboxError(f"sandbox process exited during start ({' | '.join(tail)}); log: {config.LOG_FILE}")
            if self.answers() and self.pid() == proc.pid:
                break
            time.sleep(0.1)
        else:
            raise SandboxError(f"endpoint {self.endpoint} did not answer in {timeout:.0f} s; log: {config.LOG_FILE}")
        say(
            f"sandbox up (pid {proc.pid}) on {self.endpoint} in {time.monotonic() - start:.1f} s; log {config.LOG_FILE}"
        )
        self._write_env()

    @contextlib.contextmanager
    def session(self, say=print):
        """Use the running sandbox, or start one; yield whether it was started here.

        At the end it is stopped only if it was started here (and ``SANDBOX_KEEP`` is not set), so
        tests never stop a sandbox someone else is using.
        """
        started = self.pid() is None
        self.up(say=say)
        yield started
        if started and not os.environ.get("SANDBOX_KEEP"):
            self.down(say=say)

    def _write_env(self) -> None:
        """Copy the env files the sandbox wrote (least privilege; admin) into the checkout, mode 0600."""
        config.ENV_FILE.parent.mkdir(parents=True, exist_ok=True)
        for path, admin in ((config.ENV_FILE, False), (config.ADMIN_ENV_FILE, True)):
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text("\n".join(self.env_lines(admin)) + "\n")

    def down(self, say=print, timeout: float = 60) -> None:
        server.check_root()
        pid = self.pid()
        if pid:
            os.kill(pid, 15)
            deadline = time.monotonic() + timeout
            # until the process is gone, not only its PID file: its listeners (API, guests, metadata) close with it
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, 9)
                time.sleep(0.2)
            say(f"stopped sandbox process {pid}")
        done = server.teardown()
        if config.PID_FILE.exists():
            config.PID_FILE.unlink()
        for env_file in (
            config.ENV_FILE,
            config.ADMIN_ENV_FILE,
            config.STATE_DIR / "env",
            config.STATE_DIR / "admin.env",
        ):
            if env_file.exists():
                env_file.unlink()
        say(
            f"sandbox down; removed {len(done)} objects ({', '.join(sorted({d.split()[0] for d in done}))})"
            if done
            else "sandbox down; nothing was left to remove"
        )
