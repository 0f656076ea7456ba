"""A stub EC2 endpoint for inventory benchmarks: DescribeInstances and DescribeRegions from pre-rendered pages.

Binds 127.0.0.1 only, answers each call after ``--delay`` seconds (about what AWS takes for a page of
1,000 instances), and stops by itself after ``--lifetime`` seconds or ``--max-requests`` requests.
The instances are synthetic but shaped like real ones: every field DescribeInstances returns for an
ordinary VPC instance, several zones, instance types, images, subnets, and tags (Name, Role, Env, Team).
Filters are not applied: every instance is running, and the benchmark configurations ask for running ones.

    python stub.py --instances 10000 --regions us-east-1,eu-west-1,eu-central-1,ap-south-1 --port-file PORT
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
TYPES = ["t3.micro", "t3.small", "t3.medium", "m6i.large", "m6i.xlarge", "c6i.2xlarge", "r6i.large"]
ROLES = ["web", "db", "cache", "worker", "batch", "proxy"]
ENVS = ["prod", "staging", "dev"]
TEAMS = ["alpha", "bravo", "charlie", "delta"]


def instance_xml(rng, region, serial, zone_letters):
    zone = region + rng.choice(zone_letters)
    zone_idx = zone_letters.index(zone[-1])
    iid = f"i-{serial:017x}"
    third, fourth = divmod(serial, 250)
    ip = f"10.{zone_idx}.{third % 256}.{fourth + 4}"
    dns = f"ip-{ip.replace('.', '-')}.{region}.compute.internal"
    public = rng.random() < 0.3
    pub_ip = f"198.18.{third % 256}.{fourth + 4}"
    role = rng.choice(ROLES)
    itype = rng.choice(TYPES)
    vpc = f"vpc-{0xA000 + zone_idx // 8:017x}"
    subnet = f"subnet-{0xB000 + zone_idx:017x}"
    sg = f"sg-{0xC000 + ROLES.index(role):017x}"
    eni = f"eni-{serial:017x}"
    vol = f"vol-{serial:017x}"
    day = 1 + serial % 28
    launch = f"2026-0{1 + serial % 9}-{day:02d}T{serial % 24:02d}:{serial % 60:02d}:00.000Z"
    mac = "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}".format(*tuple(rng.randrange(256) for _byte in range(5)))
    assoc = (
        f"<association><publicIp>{pub_ip}</publicIp><publicDnsName>ec2-{pub_ip.replace('.', '-')}."
        f"{region}.compute.amazonaws.com</publicDnsName><ipOwnerId>amazon</ipOwnerId></association>"
        if public
        else ""
    )
    public_fields = (
        f"<dnsName>ec2-{pub_ip.replace('.', '-')}.{region}.compute.amazonaws.com</dnsName>"
        f"<ipAddress>{pub_ip}</ipAddress>"
        if public
        else "<dnsName/>"
    )
    tags = {"Name": f"{role}-{serial:05d}", "Role": role, "Env": rng.choice(ENVS), "Team": rng.choice(TEAMS)}
    if rng.random() < 0.5:
        tags["CostCenter"] = f"cc-{rng.randrange(100, 999)}"
    tag_xml = "".join(f"<item><key>{k}</key><value>{v}</value></item>" for k, v in tags.items())
    return f"""<item>
<instanceId>{iid}</instanceId><imageId>ami-{0xD000 + serial % 5:017x}</imageId>
<instanceState><code>16</code><name>running</name></instanceState>
<privateDnsName>{dns}</privateDnsName>{public_fields}<reason/><keyName>bakery-{rng.choice(ENVS)}</keyName>
<amiLaunchIndex>0</amiLaunchIndex><productCodes/><instanceType>{itype}</instanceType><launchTime>{launch}</launchTime>
<placement><availabilityZone>{zone}</availabilityZone><groupName/><tenancy>default</tenancy></placement>
<monitoring><state>disabled</state></monitoring><subnetId>{subnet}</subnetId><vpcId>{vpc}</vpcId>
<privateIpAddress>{ip}</privateIpAddress><sourceDestCheck>true</sourceDestCheck>
<groupSet><item><groupId>{sg}</groupId><groupName>{role}</groupName></item></groupSet>
<architecture>x86_64</architecture><rootDeviceType>ebs</rootDeviceType><rootDeviceName>/dev/xvda</rootDeviceName>
<blockDeviceMapping><item><deviceName>/dev/xvda</deviceName><ebs><volumeId>{vol}</volumeId><status>attached</status>
<attachTime>{launch}</attachTime><deleteOnTermination>true</deleteOnTermination></ebs></item></blockDeviceMapping>
<virtualizationType>hvm</virtualizationType><clientToken>bakery-{serial}</clientToken>
<tagSet>{tag_xml}</tagSet><hypervisor>xen</hypervisor>
<iamInstanceProfile><arn>arn:aws:iam::123456789012:instance-profile/{role}</arn><id>AIPA{serial:016d}</id></iamInstanceProfile>
<networkInterfaceSet><item><networkInterfaceId>{eni}</networkInterfaceId><subnetId>{subnet}</subnetId><vpcId>{vpc}</vpcId>
<description/><ownerId>123456789012</ownerId><status>in-use</status><macAddress>{mac}</macAddress>
<privateIpAddress>{ip}</privateIpAddress><privateDnsName>{dns}</privateDnsName><sourceDestCheck>true</sourceDestCheck>
<groupSet><item><groupId>{sg}</groupId><groupName>{role}</groupName></item></groupSet>
<attachment><attachmentId>eni-attach-{serial:017x}</attachmentId><deviceIndex>0</deviceIndex><status>attached</status>
<attachTime>{launch}</attachTime><deleteOnTermination>true</deleteOnTermination><networkCardIndex>0</networkCardIndex></attachment>
{assoc}<privateIpAddressesSet><item><privateIpAddress>{ip}</privateIpAddress><privateDnsName>{dns}</privateDnsName>
<primary>true</primary>{assoc}</item></privateIpAddressesSet><ipv6AddressesSet/><interfaceType>interface</interfaceType></item>
</networkInterfaceSet><ebsOptimized>{str(itype[0] != "t").lower()}</ebsOptimized><enaSupport>true</enaSupport>
<cpuOptions><coreCount>1</coreCount><threadsPerCore>2</threadsPerCore></cpuOptions>
<capacityReservationSpecification><capacityReservationPreference>open</capacityReservationPreference></capacityReservationSpecification>
<hibernationOptions><configured>false</configured></hibernationOptions>
<metadataOptions><state>applied</state><httpTokens>required</httpTokens><httpPutResponseHopLimit>2</httpPutResponseHopLimit>
<httpEndpoint>enabled</httpEndpoint><httpProtocolIpv6>disabled</httpProtocolIpv6><instanceMetadataTags>disabled</instanceMetadataTags></metadataOptions>
<enclaveOptions><enabled>false</enabled></enclaveOptions><bootMode>uefi-preferred</bootMode><platformDetails>Linux/UNIX</platformDetails>
<usageOperation>RunInstances</usageOperation><usageOperationUpdateTime>{launch}</usageOperationUpdateTime>
<privateDnsNameOptions><hostnameType>ip-name</hostnameType><enableResourceNameDnsARecord>false</enableResourceNameDnsARecord>
<enableResourceNameDnsAAAARecord>false</enableResourceNameDnsAAAARecord></privateDnsNameOptions>
<maintenanceOptions><autoRecovery>default</autoRecovery></maintenanceOptions><currentInstanceBootMode>uefi</currentInstanceBootMode>
</item>"""


def render_pages(region, count, first_serial, page_size, seed):
    """Pages of ``DescribeInstancesResponse`` XML (bytes), reservations of 1 to 3 instances each."""
    rng = random.Random(f"{seed}-{region}")  # noqa: S311 - synthetic data, reproducible
    letters = "abcd"
    pages = []
    serial = first_serial
    remaining = count
    page_idx = 0
    while remaining > 0 or not pages:
        in_page = min(page_size, remaining)
        reservations = []
        left = in_page
        while left > 0:
            size = min(left, rng.choice((1, 1, 2, 3)))
            items = "".join(instance_xml(rng, region, serial + i, letters) for i in range(size))
            reservations.append(
                f"<item><reservationId>r-{serial:017x}</reservationId><ownerId>123456789012</ownerId>"
                f"<groupSet/><instancesSet>{items}</instancesSet></item>"
            )
            serial += size
            left -= size
        remaining -= in_page
        page_idx += 1
        token = f"<nextToken>{region}.{page_idx}</nextToken>" if remaining > 0 else ""
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<DescribeInstancesResponse xmlns="{NS}">'
            f"<requestId>{page_idx:08d}-0000-4000-8000-000000000000</requestId>"
            f"<reservationSet>{''.join(reservations)}</reservationSet>{token}</DescribeInstancesResponse>"
        )
        pages.append(body.encode())
    return pages


def regions_xml(regions):
    items = "".join(
        f"<item><regionName>{r}</regionName><regionEndpoint>ec2.{r}.amazonaws.com</regionEndpoint>"
        f"<optInStatus>opt-in-not-required</optInStatus></item>"
        for r in regions
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<DescribeRegionsResponse xmlns="{NS}">'
        f"<requestId>00000000-0000-4000-8000-000000000001</requestId><regionInfo>{items}</regionInfo>"
        f"</DescribeRegionsResponse>"
    ).encode()


REGION_IN_AUTH = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")


def make_handler(pages, regions_body, delay, counter):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            action = form.get("Action", [""])[0]
            match = REGION_IN_AUTH.search(self.headers.get("Authorization", ""))
            region = match.group(1) if match else ""
            counter.hit()
            time.sleep(delay)
            if action == "DescribeRegions":
                self._send(200, regions_body)
            elif action == "DescribeInstances":
                token = form.get("NextToken", [""])[0]
                index = int(token.rsplit(".", 1)[1]) if token else 0
                region_pages = pages.get(region)
                if region_pages is None:
                    region_pages = pages["__empty__"]
                self._send(200, region_pages[index])
            else:
                body = (
                    f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>InvalidAction</Code>'
                    f"<Message>stub answers DescribeInstances and DescribeRegions, not {action}</Message>"
                    f"</Error></Errors><RequestID>0</RequestID></Response>"
                ).encode()
                self._send(400, body)

        def _send(self, status, body):
            self.send_response(status)
            self.send_header("Content-Type", "text/xml;charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


class Counter:
    def __init__(self, limit, on_limit):
        self.count = 0
        self.limit = limit
        self.on_limit = on_limit
        self.lock = threading.Lock()

    def hit(self):
        with self.lock:
            self.count += 1
            if self.count >= self.limit:
                self.on_limit()


def build_pages(regions, total, page_size=1000, seed=1):
    per_region, extra = divmod(total, len(regions))
    pages = {}
    serial = 1
    for idx, region in enumerate(regions):
        count = per_region + (1 if idx < extra else 0)
        pages[region] = render_pages(region, count, serial, page_size, seed)
        serial += count
    pages["__empty__"] = render_pages("xx-none-1", 0, 0, page_size, seed)
    return pages


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000, help="instances in all, spread over the regions")
    parser.add_argument("--regions", default="us-east-1", help="comma-separated region names")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.25, help="seconds before each answer")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--port-file", help="write the port here once listening")
    parser.add_argument("--lifetime", type=float, default=900, help="stop after this many seconds")
    parser.add_argument("--max-requests", type=int, default=20000, help="stop after this many requests")
    args = parser.parse_args(argv)

    regions = [r for r in args.regions.split(",") if r]
    pages = build_pages(regions, args.instances, args.page_size)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), None)
    server.daemon_threads = True
    stop = threading.Event()
    counter = Counter(args.max_requests, stop.set)
    server.RequestHandlerClass = make_handler(pages, regions_xml(regions), args.delay, counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(str(port))
        os.replace(tmp, args.port_file)
    print(f"stub EC2 on http://127.0.0.1:{port} ({args.instances} instances in {','.join(regions)})", flush=True)
    stop.wait(args.lifetime)
    server.shutdown()
    server.server_close()
    print(f"stub EC2 stopped after {counter.count} requests", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
