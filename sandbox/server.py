"""The sandbox process: checks, base images, moto + middleware on 127.0.0.1, IMDS; and teardown."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
from pathlib import Path

from . import acm, config, elb, hosts, iam, images, kms, limits, net, strict
from .errors import SandboxError


# ---------------------------------------------------------------- preconditions
def check_root() -> None:
    if os.geteuid() != 0:
        raise SandboxError("the sandbox needs root (network namespaces, mounts, iptables): run `sudo make sandbox`")


def check_tools() -> None:
    tools = ("debootstrap", "systemd-nspawn", "iptables", "ip", "ssh-keygen", "haproxy")
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        raise SandboxError(
            f"missing programs: {', '.join(missing)}; `make sandbox` installs them "
            "(apt-get install -y debootstrap iptables systemd-container iproute2 openssh-client haproxy)"
        )


def check_kernel() -> None:
    fs = Path("/proc/filesystems").read_text()
    if "overlay" not in fs:
        net.sh("modprobe", "overlay", check=False)
        if "overlay" not in Path("/proc/filesystems").read_text():
            raise SandboxError("kernel has no overlayfs (modprobe overlay failed): use a kernel with CONFIG_OVERLAY_FS")
    if not Path("/proc/self/ns/net").exists():
        raise SandboxError("kernel has no network namespaces (CONFIG_NET_NS): use a kernel that supports them")
    probe = net.sh("ip", "link", "add", "bks-probe0", "type", "veth", "peer", "name", "bks-probe1", check=False)
    if probe.returncode != 0:
        raise SandboxError(f"cannot create veth pairs ({probe.stderr.strip()}): load the veth module (modprobe veth)")
    net.sh("ip", "link", "del", "bks-probe0", check=False)
    if net.sh("iptables", "-w", "-S", "INPUT", check=False).returncode != 0:
        raise SandboxError("iptables does not work on this kernel (nf_tables/ip_tables missing): load the modules")


def check_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((config.HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SandboxError(
                    f"port {port} on {config.HOST} is in use by another process: stop it, "
                    "or choose another port with SANDBOX_PORT=NNNN"
                ) from exc
            raise


def running_pid() -> int | None:
    try:
        pid = int(config.PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if b"sandbox" in cmdline and b"serve" in cmdline else None


# ---------------------------------------------------------------- the process
def serve(port: int) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    log = logging.getLogger("sandbox")
    window, seed = strict.settings_from_env()
    policy_text = iam.POLICY_FILE.read_text()
    bases = [images.ensure_image(r, say=log.info) for r in images.RECIPES]
    config.STATE_DIR.mkdir(parents=True, exist_ok=True)
    amis = config.STATE_DIR / "amis.json"
    images.write_amis_file(bases, amis)
    os.environ["MOTO_AMIS_PATH"] = str(amis)
    os.environ.setdefault("MOTO_ACCOUNT_ID", config.ACCOUNT_ID)

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    from . import autoscaling, imds, moto_gaps
    from .core import Core
    from .middleware import Middleware

    moto_gaps.apply()
    autoscaling.Engine.apply_moto()  # groups' instances are the engine's (sandbox/autoscaling.py)

    mirror = images.machine_mirror()
    mirror_hostnames = images.mirror_hosts(mirror)
    addrs = net.mirror_ips(mirror_hostnames)
    hosts.MIRROR_PINS[:] = [f"{addrs[0]} {h}\n" for h in mirror_hostnames] if addrs else []
    for name, (was, now) in limits.raise_limits().items():
        log.info("raised %s from %d to %d while the sandbox runs", name.replace("/", "."), was, now)
    net.setup_bridge(addrs, port)
    regions = images.regions()
    core = Core(port, {b.ami_id(r): [str(b.root)] for b in bases for r in regions}, window=window, seed=seed)
    core.strict.image_region = {b.ami_id(r): r for b in bases for r in regions}
    core.elb.bodies = True  # application load balancers run HAProxy (sandbox/elb.py)
    if os.environ.get("SANDBOX_FAULTS"):  # random faults from the start (reliability tests); bounded, see faults.py
        chaos = core.chaos.configure(json.loads(os.environ["SANDBOX_FAULTS"]))
        log.info("chaos on from the start: %s", chaos["spec"])
    imds.start(core)
    app = Middleware(DomainDispatcherApplication(create_backend_app), core)
    srv = make_server(config.HOST, port, app, threaded=True)
    serving = threading.Thread(target=srv.serve_forever, name="serve", daemon=True)
    serving.start()
    # The same API for guests, on the bridge (BKS-INPUT lets hosts reach this address and port only).
    guest = make_server(config.GUEST_HOST, port, guest_app(app), threaded=True)
    threading.Thread(target=guest.serve_forever, name="serve-guests", daemon=True).start()
    # IAM users first (nothing else is served yet: `up` waits for the PID file), then enforce.
    keys = core.enforce_iam(policy_text)
    acm.ensure_ca()  # the CA the flow's load balancer certificates are signed with (made once, kept)
    if kms.enabled_from_env():  # the account's EBS default: encrypted, with a customer-managed key
        core.kms.setup(config.AMI_REGIONS)
    write_env_files(port, keys)
    config.PID_FILE.write_text(f"{os.getpid()}\n")

    def stop(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "serving EC2 on %s (base images: %s; consistency window %g s, seed %d; IAM enforced, users %s)",
        config.endpoint(port),
        ", ".join(b.name for b in bases),
        window,
        seed,
        ", ".join(sorted(keys)),
    )

    def warm():  # moto loads its ~1,300 default AMIs lazily; do it before the first client waits
        for region in config.AMI_REGIONS:
            with contextlib.suppress(Exception):
                core.ec2(region).describe_images(ImageIds=[bases[0].ami_id(region)])

    threading.Thread(target=warm, daemon=True).start()
    try:
        serving.join()
    finally:
        log.info("stopping hosts")
        core.shutdown()
        with contextlib.suppress(OSError):
            config.PID_FILE.unlink()


def guest_app(app):
    """The API as guests see it: AWS's services only; the sandbox's control and moto's own API stay local."""

    def serve_guest(environ, start_response):
        if environ.get("PATH_INFO", "").startswith(("/_sandbox", "/moto-api")):
            body = b'{"error": "not found"}'
            start_response("404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)

    return serve_guest


def write_env_files(port: int, keys: dict[str, tuple[str, str]]) -> None:
    """The least-privilege user's env (what everything runs with) and the admin's (tests, inspection)."""
    endpoint, guest = config.endpoint(port), config.guest_endpoint(port)
    for path, user in ((config.STATE_DIR / "env", iam.USER), (config.STATE_DIR / "admin.env", iam.ADMIN_USER)):
        tmp = path.with_suffix(".tmp")
        tmp.touch(mode=0o600)
        tmp.chmod(0o600)
        ca = [f"export BAKERY_SANDBOX_CA={acm.CA_FILE}"]  # trusted by HTTPS clients of the load balancers
        tmp.write_text("\n".join([*iam.env_lines(endpoint, keys[user], guest), *ca]) + "\n")
        tmp.rename(path)


# ---------------------------------------------------------------- teardown (also after a crash)
def teardown() -> list[str]:
    rec = net.load_record()
    hosts.kill_recorded(rec.get("pids", []))
    elb.kill_recorded(rec.get("lb_pids", []))  # the load balancers' HAProxy masters (their workers follow)
    done = hosts.unmount_all()
    done += hosts.remove_all_cgroups()
    done += net.teardown()
    done += limits.restore_limits(rec)
    for d in (config.HOSTS_DIR, config.LAYERS_DIR, elb.LB_DIR):
        shutil.rmtree(d, ignore_errors=True)
    with contextlib.suppress(OSError):
        config.RECORD_FILE.unlink()
    return done
