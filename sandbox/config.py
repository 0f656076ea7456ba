"""Paths, names and constants shared by the sandbox modules."""

from __future__ import annotations

import os
from pathlib import Path

PREFIX = "bks-"
BRIDGE = "bks-br0"
# The bridge's own address, fixed: a Linux bridge left to itself takes the lowest address of its ports, so a host
# going away could change the MAC of every subnet's gateway under the hosts' ARP caches (their replies to the load
# balancers and the controller then go nowhere until the caches expire, tens of seconds).
BRIDGE_MAC = "02:62:6b:73:00:01"
CHAIN_FWD = "BKS-FORWARD"
CHAIN_IN = "BKS-INPUT"
CHAIN_NAT = "BKS-POSTROUTING"

HOST = "127.0.0.1"
PORT = int(os.environ.get("SANDBOX_PORT", "4700"))

# Runtime state (PID file, log, record of what was made, hosts, snapshot layers).
STATE_DIR = Path(os.environ.get("SANDBOX_STATE_DIR", "/var/lib/bakery-sandbox"))
# Base images, cached across runs, outside the repository.
CACHE_DIR = Path(os.environ.get("SANDBOX_CACHE_DIR", "/var/cache/bakery-sandbox"))
# The env file other targets source (inside the checkout, ignored by git).
REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = Path(os.environ.get("SANDBOX_ENV_FILE", str(REPO_ROOT / ".build" / "sandbox" / "env")))
# The administrator's environment beside it: for tests and inspection only.
ADMIN_ENV_FILE = ENV_FILE.with_name("admin.env")

PID_FILE = STATE_DIR / "sandbox.pid"
LOG_FILE = STATE_DIR / "sandbox.log"
RECORD_FILE = STATE_DIR / "record.json"
HOSTS_DIR = STATE_DIR / "hosts"
LAYERS_DIR = STATE_DIR / "layers"

ACCOUNT_ID = "123456789012"
DEBIAN_OWNER = "136693071363"
# Only for the sandbox's first IAM calls (making its users) and the API front without IAM (tests).
ACCESS_KEY = "AKIDSANDBOXEXAMPLE"
SECRET_KEY = "sandbox-secret-key-not-a-real-secret"  # noqa: S105 - dummy credentials for a local endpoint
REGION = "us-east-1"
AMI_REGIONS = ("us-east-1", "eu-west-1")

IMDS_ADDR = "169.254.169.254"
LOGIN_USER = "admin"
LOGIN_UID = 1000

EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"


def endpoint(port: int | None = None) -> str:
    return f"http://{HOST}:{port or PORT}"


# Guests reach the same API (the same middleware) at the metadata address, on the API's port: an address on the
# sandbox's bridge that every subnet routes to, and the only one besides the metadata service a guest may reach.
GUEST_HOST = IMDS_ADDR


def guest_endpoint(port: int | None = None) -> str:
    return f"http://{GUEST_HOST}:{port or PORT}"
