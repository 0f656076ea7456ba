"""Host networking: bridge, per-host netns + veth, VPC routes, NAT to the mirror, security groups.

Every object is named with the bks- prefix (chains BKS-) and written to the record file, so
`down` can remove all of it after a crash too.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from . import config
from .errors import SandboxError

_lock = threading.RLock()
# The ruleset last loaded into each host's namespace: a refresh that renders the same rules loads nothing (a fleet's
# boot refreshes every host's firewall many times while most rulesets stay the same). Forgotten with the namespace.
_fw_lock = threading.Lock()
_fw_loaded: dict[str, str] = {}


def sh(*cmd: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run(list(cmd), capture_output=True, text=True, input=input)
    if check and res.returncode != 0:
        raise SandboxError(f"command failed: {' '.join(cmd)}: {res.stderr.strip() or res.stdout.strip()}")
    return res


def terminate(pid: int, grace: float) -> None:
    """SIGTERM, then SIGKILL if the process is still there after ``grace`` seconds (the caller checked it is ours)."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.1)


# ---------------------------------------------------------------- record of what was made
def load_record() -> dict:
    try:
        return json.loads(config.RECORD_FILE.read_text())
    except (OSError, ValueError):
        return {}


def save_record(rec: dict) -> None:
    config.RECORD_FILE.parent.mkdir(parents=True, exist_ok=True)
    tmp = config.RECORD_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=1, sort_keys=True))
    tmp.replace(config.RECORD_FILE)


def record_add(key: str, value) -> None:
    with _lock:
        rec = load_record()
        items = rec.setdefault(key, [])
        if value not in items:
            items.append(value)
        save_record(rec)


def record_remove(key: str, value) -> None:
    with _lock:
        rec = load_record()
        if value in rec.get(key, []):
            rec[key].remove(value)
            save_record(rec)


# ---------------------------------------------------------------- machine facts
def uplink() -> tuple[str, int]:
    out = json.loads(sh("ip", "-j", "route", "show", "default").stdout or "[]")
    dev = out[0]["dev"] if out else "eth0"
    mtu = int(Path(f"/sys/class/net/{dev}/mtu").read_text())
    return dev, mtu


def machine_routes() -> list[tuple[ipaddress.IPv4Network, str]]:
    """The machine's own IPv4 routes (main table), without the sandbox's own and the default."""
    out = json.loads(sh("ip", "-j", "-4", "route", "show", "table", "main").stdout or "[]")
    rec = load_record()
    ours = set(rec.get("vpc_ranges", []))
    routes = []
    for r in out:
        dst = r.get("dst", "")
        if dst in ("default", "") or r.get("dev") == config.BRIDGE or dst in ours:
            continue
        if "/" not in dst:
            dst += "/32"
        routes.append((ipaddress.ip_network(dst, strict=False), r.get("dev", r.get("type", ""))))
    return routes


def check_vpc_range(cidr: str) -> None:
    net = ipaddress.ip_network(cidr, strict=False)
    for route, dev in machine_routes():
        if net.overlaps(route):
            raise SandboxError(
                f"VPC range {cidr} overlaps this machine's route {route} ({dev}); "
                "use a VPC CIDR block that does not overlap the machine's networks"
            )


def mirror_ips(hosts: list[str]) -> list[str]:
    ips = set()
    for h in hosts:
        try:
            for info in socket.getaddrinfo(h, 80, socket.AF_INET, socket.SOCK_STREAM):
                ips.add(info[4][0])
        except OSError:
            pass
    return sorted(ips)


# ---------------------------------------------------------------- bridge + firewall
def setup_bridge(mirror_addrs: list[str], api_port: int) -> None:
    dev, mtu = uplink()
    rec = load_record()
    if "ip_forward_before" not in rec:
        rec["ip_forward_before"] = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
        save_record(rec)
    if not Path(f"/sys/class/net/{config.BRIDGE}").exists():
        sh("ip", "link", "add", config.BRIDGE, "type", "bridge")
        record_add("links", config.BRIDGE)
    sh("ip", "link", "set", config.BRIDGE, "address", config.BRIDGE_MAC, "mtu", str(mtu), "up")
    add_bridge_addr(config.IMDS_ADDR)
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    # filter: hosts may reach the mirror (tcp 80/443), the metadata service and the guest API, nothing else.
    for chain in (config.CHAIN_FWD, config.CHAIN_IN):
        sh("iptables", "-w", "-N", chain, check=False)
        sh("iptables", "-w", "-F", chain)
    record_add("chains", ["filter", config.CHAIN_FWD])
    record_add("chains", ["filter", config.CHAIN_IN])
    fwd = config.CHAIN_FWD
    rules = [
        ["-A", fwd, "-i", config.BRIDGE, "-o", config.BRIDGE, "-j", "ACCEPT"],
        ["-A", fwd, "-o", config.BRIDGE, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
    ]
    for ip in mirror_addrs:
        match = ["-i", config.BRIDGE, "-o", dev, "-d", ip, "-p", "tcp", "-m", "multiport", "--dports", "80,443"]
        rules.append(["-A", fwd, *match, "-j", "ACCEPT"])
    rules += [["-A", fwd, "-i", config.BRIDGE, "-j", "DROP"], ["-A", fwd, "-o", config.BRIDGE, "-j", "DROP"]]
    inp = config.CHAIN_IN
    rules += [
        ["-A", inp, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        ["-A", inp, "-d", config.IMDS_ADDR, "-p", "tcp", "--dport", "80", "-j", "ACCEPT"],
        # the API for guests (DynamoDB, S3, STS with the instance role's credentials): that address and port only
        ["-A", inp, "-d", config.GUEST_HOST, "-p", "tcp", "--dport", str(api_port), "-j", "ACCEPT"],
        ["-A", inp, "-j", "DROP"],
    ]
    for r in rules:
        sh("iptables", "-w", *r)
    _ensure_jump("filter", "FORWARD", ["-j", fwd])
    _ensure_jump("filter", "INPUT", ["-i", config.BRIDGE, "-j", inp])
    sh("iptables", "-w", "-t", "nat", "-N", config.CHAIN_NAT, check=False)
    sh("iptables", "-w", "-t", "nat", "-F", config.CHAIN_NAT)
    record_add("chains", ["nat", config.CHAIN_NAT])
    _ensure_jump("nat", "POSTROUTING", ["-j", config.CHAIN_NAT])


def _ensure_jump(table: str, chain: str, spec: list[str]) -> None:
    if sh("iptables", "-w", "-t", table, "-C", chain, *spec, check=False).returncode != 0:
        sh("iptables", "-w", "-t", table, "-I", chain, "1", *spec)
    record_add("jumps", [table, chain, *spec])


def add_bridge_addr(addr: str) -> None:
    have = sh("ip", "-o", "-4", "addr", "show", "dev", config.BRIDGE).stdout
    if f" {addr}/32 " not in have:
        sh("ip", "addr", "add", f"{addr}/32", "dev", config.BRIDGE)


def ensure_vpc_range(cidr: str) -> None:
    """Route a VPC range locally: unreachable unless a host holds the address; NAT it to the mirror."""
    with _lock:
        rec = load_record()
        if cidr in rec.get("vpc_ranges", []):
            return
        check_vpc_range(cidr)
        dev, _ = uplink()
        record_add("vpc_ranges", cidr)
        sh("ip", "route", "replace", "unreachable", cidr)
        sh("iptables", "-w", "-t", "nat", "-A", config.CHAIN_NAT, "-s", cidr, "-o", dev, "-j", "MASQUERADE")


# ---------------------------------------------------------------- hosts
def ns_name(instance_id: str) -> str:
    return config.PREFIX + instance_id


def veth_name(instance_id: str) -> str:
    return "bksv" + hashlib.sha1(instance_id.encode()).hexdigest()[:11]  # noqa: S324 - a name, not security


def create_host_net(instance_id: str, ip: str, prefix: int, gateway: str, mac: str | None) -> None:
    ns, veth = ns_name(instance_id), veth_name(instance_id)
    forget_firewall(instance_id)
    _, mtu = uplink()
    with _lock:
        add_bridge_addr(gateway)
    record_add("netns", ns)
    if not Path(f"/run/netns/{ns}").exists():
        sh("ip", "netns", "add", ns)
    record_add("links", veth)
    if not Path(f"/sys/class/net/{veth}").exists():
        sh("ip", "link", "add", veth, "mtu", str(mtu), "type", "veth", "peer", "name", "eth0", "mtu", str(mtu),
           "netns", ns)  # fmt: skip
    sh("ip", "link", "set", veth, "master", config.BRIDGE, "up")
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    if mac:
        sh("ip", "-n", ns, "link", "set", "eth0", "address", mac, check=False)
    sh("ip", "-n", ns, "addr", "replace", f"{ip}/{prefix}", "dev", "eth0")
    sh("ip", "-n", ns, "link", "set", "eth0", "up")
    sh("ip", "-n", ns, "route", "replace", "default", "via", gateway)
    host_route(ip, True, gateway)


def host_route(ip: str, up: bool, src: str | None = None) -> None:
    if up:
        sh("ip", "route", "replace", f"{ip}/32", "dev", config.BRIDGE, *(["src", src] if src else []))
        record_add("host_routes", ip)
    else:
        sh("ip", "route", "del", f"{ip}/32", "dev", config.BRIDGE, check=False)
        record_remove("host_routes", ip)


def delete_host_net(instance_id: str, ip: str | None) -> None:
    ns, veth = ns_name(instance_id), veth_name(instance_id)
    forget_firewall(instance_id)
    if ip:
        host_route(ip, False)
    sh("ip", "link", "del", veth, check=False)
    sh("ip", "netns", "del", ns, check=False)
    record_remove("links", veth)
    record_remove("netns", ns)


def apply_firewall(instance_id: str, permissions: list[dict], peers: dict[str, list[str]]) -> None:
    """Security group ingress as iptables INPUT rules inside the host's namespace (default: drop)."""
    lines = ["*filter", ":INPUT DROP [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]"]
    lines += ["-A INPUT -i lo -j ACCEPT", "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"]
    for perm in permissions:
        proto = str(perm.get("IpProtocol", "-1"))
        match = []
        if proto not in ("-1", "all"):
            match = ["-p", {"6": "tcp", "17": "udp", "1": "icmp"}.get(proto, proto)]
            lo, hi = perm.get("FromPort"), perm.get("ToPort")
            if match[1] in ("tcp", "udp") and lo is not None and lo != -1:
                match += ["--dport", f"{lo}:{hi}" if hi not in (None, lo) else str(lo)]
        sources = [r["CidrIp"] for r in perm.get("IpRanges", []) if "CidrIp" in r]
        for pair in perm.get("UserIdGroupPairs", []):
            sources += [f"{ip}/32" for ip in peers.get(pair.get("GroupId", ""), [])]
        for src in sources:
            lines.append(" ".join(["-A INPUT", "-s", src, *match, "-j ACCEPT"]))
    lines.append("COMMIT")
    text = "\n".join(lines) + "\n"
    with _fw_lock:
        if _fw_loaded.get(instance_id) == text:
            return
        _fw_loaded.pop(instance_id, None)
        sh("ip", "netns", "exec", ns_name(instance_id), "iptables-restore", input=text)
        _fw_loaded[instance_id] = text


def forget_firewall(instance_id: str) -> None:
    """The host's namespace is new or gone: its next apply_firewall loads its rules whatever they are."""
    with _fw_lock:
        _fw_loaded.pop(instance_id, None)


# ---------------------------------------------------------------- teardown
def teardown() -> list[str]:
    """Remove every network object the sandbox made (record + bks- prefix). Idempotent."""
    rec = load_record()
    with _fw_lock:
        _fw_loaded.clear()
    done = []
    for ip in rec.get("host_routes", []):
        sh("ip", "route", "del", f"{ip}/32", check=False)
    # any route on our bridge, and our unreachable ranges
    for cidr in rec.get("vpc_ranges", []):
        if sh("ip", "route", "del", "unreachable", cidr, check=False).returncode == 0:
            done.append(f"route unreachable {cidr}")
    for ns in sh("ip", "netns", "list", check=False).stdout.split("\n"):
        name = ns.split(" ")[0]
        if name.startswith(config.PREFIX):
            sh("ip", "netns", "del", name, check=False)
            done.append(f"netns {name}")
    for ns in rec.get("netns", []):
        sh("ip", "netns", "del", ns, check=False)
    links = json.loads(sh("ip", "-j", "link", "show", check=False).stdout or "[]")
    for link in links:
        name = link.get("ifname", "")
        if name.startswith("bks"):
            sh("ip", "link", "del", name, check=False)
            done.append(f"link {name}")
    for jump in rec.get("jumps", []):
        table, chain, *spec = jump
        while sh("iptables", "-w", "-t", table, "-D", chain, *spec, check=False).returncode == 0:
            done.append(f"iptables jump {table}/{chain}")
    for table, chain in (("filter", config.CHAIN_FWD), ("filter", config.CHAIN_IN), ("nat", config.CHAIN_NAT)):
        for t, c, *spec in _jumps_to(table, chain):
            sh("iptables", "-w", "-t", t, "-D", c, *spec, check=False)
        if sh("iptables", "-w", "-t", table, "-F", chain, check=False).returncode == 0:
            sh("iptables", "-w", "-t", table, "-X", chain, check=False)
            done.append(f"iptables chain {table}/{chain}")
    before = rec.get("ip_forward_before")
    if before is not None:
        Path("/proc/sys/net/ipv4/ip_forward").write_text(f"{before}\n")
    return done


def _jumps_to(table: str, chain: str) -> list[list[str]]:
    out = sh("iptables", "-w", "-t", table, "-S", check=False).stdout.splitlines()
    found = []
    for line in out:
        parts = line.split()
        if parts[:1] == ["-A"] and f"-j {chain}" in line and parts[1] != chain:
            found.append([table, parts[1], *parts[2:]])
    return found
