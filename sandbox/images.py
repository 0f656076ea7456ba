"""Debian base images: debootstrap recipes, an atomic build cache, and their AMI entries."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from . import config
from .errors import SandboxError

PACKAGES = (
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "sudo",
    "iproute2",
    "iputils-ping",
    "ca-certificates",
    "procps",
    "curl",
    "less",
    "gnupg",
)

# Run inside the fresh root filesystem (chroot) once, after debootstrap.
CUSTOMIZE = r"""
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
useradd -m -s /bin/bash -u {uid} -U -G sudo {user}
usermod -p '*' {user}
install -d -m 0700 -o {user} -g {user} /home/{user}/.ssh
echo '{user} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-cloud-init-users
chmod 0440 /etc/sudoers.d/90-cloud-init-users
cat > /etc/ssh/sshd_config.d/50-bakery-sandbox.conf <<'EOF'
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
EOF
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
echo localhost > /etc/hostname
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' > /etc/hosts
printf 'nameserver 127.0.0.1\n' > /etc/resolv.conf
cat > /etc/apt/sources.list <<'EOF'
deb {mirror} {suite} main
deb {mirror} {suite}-updates main
deb {security} {suite}-security main
EOF
rm -f /etc/apt/sources.list.d/*.sources
install -d /var/lib/bakery
cat > /usr/local/sbin/bakery-user-data <<'EOF'
#!/bin/sh
# First-boot user-data, like cloud-init's scripts-user: a '#!' script runs once per instance.
id=$(cat /var/lib/bakery/instance-id 2>/dev/null || echo unknown)
done=/var/lib/bakery/user-data.$id.done
[ -e "$done" ] && exit 0
touch "$done"
f=/var/lib/bakery/user-data
if [ -s "$f" ] && head -c 2 "$f" | grep -q '^#!'; then
  chmod 0700 "$f"
  "$f" > /var/log/user-data.log 2>&1 || echo "user-data exited $?" >> /var/log/user-data.log
fi
EOF
chmod 0755 /usr/local/sbin/bakery-user-data
cat > /etc/systemd/system/bakery-user-data.service <<'EOF'
[Unit]
Description=Run EC2 user-data once per instance (bakery sandbox)
After=network.target ssh.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/bakery-user-data
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/bakery-user-data.service /etc/systemd/system/multi-user.target.wants/
# Units that cannot work in a container; masked as Debian's container images do.
for u in systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
         sys-kernel-config.mount sys-kernel-debug.mount getty@tty1.service console-getty.service; do
  ln -sf /dev/null /etc/systemd/system/$u
done
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /tmp/* /root/.bash_history
"""


@dataclass(frozen=True)
class Recipe:
    key: str  # "debian-12"
    version: str  # "12"
    suite: str  # "bookworm"

    def spec(self, mirror: str) -> dict:
        return {
            "suite": self.suite,
            "mirror": mirror,
            "variant": "minbase",
            "packages": sorted(PACKAGES),
            "customize": CUSTOMIZE,
            "user": config.LOGIN_USER,
        }

    def digest(self, mirror: str) -> str:
        blob = json.dumps(self.spec(mirror), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


RECIPES = (Recipe("debian-12", "12", "bookworm"), Recipe("debian-13", "13", "trixie"))


def machine_mirror() -> str:
    """First URIs: line of the machine's deb822 sources, fallback sources.list."""
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.exists():
        for line in deb822.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split(":", 1)[1].strip().split()[0].rstrip("/")
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if parts[:1] == ["deb"]:
                url = next(p for p in parts[1:] if not p.startswith("["))
                return url.rstrip("/")
    return "http://deb.debian.org/debian"


def mirror_hosts(mirror: str) -> list[str]:
    return sorted({urlparse(mirror).hostname or "deb.debian.org"})


def security_mirror(mirror: str) -> str:
    if mirror.endswith("/debian"):
        return mirror + "-security"
    return mirror


@dataclass
class BaseImage:
    recipe: Recipe
    root: Path  # the rootfs directory (read-only lower layer)
    built: datetime

    def ami_id(self, region: str = config.REGION) -> str:
        """AMI IDs are unique to each region: the same image has its own ID in each one."""
        digest = hashlib.sha256(f"{self.recipe.key}:{self.root}:{region}".encode()).hexdigest()
        return "ami-0" + digest[:16]

    @property
    def name(self) -> str:
        return f"debian-{self.recipe.version}-amd64-{self.built:%Y%m%d-%H%M}"

    def moto_entry(self, region: str) -> dict:
        return {
            "ami_id": self.ami_id(region),
            "name": self.name,
            "description": f"Debian {self.recipe.version} ({self.recipe.suite}) (bakery sandbox base image)",
            "owner_id": config.DEBIAN_OWNER,
            "public": True,
            "virtualization_type": "hvm",
            "hypervisor": "xen",
            "architecture": "x86_64",
            "state": "available",
            "root_device_type": "ebs",
            "root_device_name": "/dev/xvda",
            "image_type": "machine",
            "platform": None,
            "boot_mode": "uefi-preferred",
            "creation_date": self.built.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "tags": {},
        }


def _run(cmd: list[str], log, **kw) -> None:
    log.write(f"+ {' '.join(cmd)}\n")
    log.flush()
    subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, **kw)


def ensure_image(recipe: Recipe, say=print) -> BaseImage:
    """Return the cached image for this recipe, building it first if needed (atomic rename)."""
    mirror = machine_mirror()
    digest = recipe.digest(mirror)
    images = config.CACHE_DIR / "images"
    final = images / f"{recipe.key}-{digest}"
    meta = final / "image.json"
    if meta.exists():
        built = datetime.fromisoformat(json.loads(meta.read_text())["built"])
        return BaseImage(recipe, final / "rootfs", built)
    images.mkdir(parents=True, exist_ok=True)
    for stale in images.glob(f".tmp-{recipe.key}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = images / f".tmp-{recipe.key}-{digest}"
    rootfs = tmp / "rootfs"
    debs = config.CACHE_DIR / "debs" / recipe.suite
    debs.mkdir(parents=True, exist_ok=True)
    logpath = images / f"{recipe.key}-build.log"
    say(f"building base image {recipe.key} ({recipe.suite}) from {mirror} (log: {logpath})")
    start = time.monotonic()
    try:
        tmp.mkdir(parents=True)
        with open(logpath, "w") as log:
            _run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--cache-dir={debs}",
                    "--include=" + ",".join(PACKAGES),
                    recipe.suite,
                    str(rootfs),
                    mirror,
                ],
                log,
            )
            script = CUSTOMIZE.format(
                uid=config.LOGIN_UID,
                user=config.LOGIN_USER,
                mirror=mirror,
                security=security_mirror(mirror),
                suite=recipe.suite,
            )
            _run(["chroot", str(rootfs), "/bin/sh", "-c", script], log)
        built = datetime.now(UTC).replace(microsecond=0)
        (tmp / "image.json").write_text(
            json.dumps({"recipe": recipe.spec(mirror), "built": built.isoformat(), "digest": digest}, indent=1)
        )
        tmp.rename(final)
    except (subprocess.CalledProcessError, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        what = f"{exc.cmd[0]} exited {exc.returncode}" if isinstance(exc, subprocess.CalledProcessError) else str(exc)
        raise SandboxError(
            f"base image {recipe.key} failed to build ({what}); see {logpath}, check the Debian mirror "
            f"{mirror} is reachable, then run `make sandbox` again (no partial image is kept)"
        ) from exc
    # Older builds of the same recipe key are replaced.
    for old in images.glob(f"{recipe.key}-*"):
        if old != final and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    say(f"built {recipe.key} in {time.monotonic() - start:.0f} s")
    return BaseImage(recipe, final / "rootfs", built)


def moto_default_amis() -> list[dict]:
    import moto

    path = Path(moto.__file__).parent / "ec2" / "resources" / "amis.json.gz"
    with gzip.open(path, "rt") as fh:
        return json.load(fh)


def regions() -> list[str]:
    """Every region EC2 has (botocore's list): each gets the base images under its own IDs."""
    import boto3

    return sorted(boto3.session.Session().get_available_regions("ec2"))


def write_amis_file(bases: list[BaseImage], path: Path) -> None:
    """moto's own catalogue (API-only images) plus the sandbox base images, for MOTO_AMIS_PATH.

    moto loads every entry into every region; the sandbox hides each base image ID outside its own
    region (sandbox/strict.py), so each region answers with its own IDs.
    """
    entries = moto_default_amis() + [b.moto_entry(r) for b in bases for r in regions()]
    path.write_text(json.dumps(entries))
