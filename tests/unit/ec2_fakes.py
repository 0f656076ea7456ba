"""EC2 answers and keys shared by the unit tests of ec2_launch and of its module_utils."""

from __future__ import annotations

import base64
import datetime

AMI = "ami-0123456789abcdef0"
SUBNET = "subnet-0123456789abcdef0"
VPC = "vpc-0123456789abcdef0"
SG = "sg-0123456789abcdef0"
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
LIVE = ["pending", "running", "stopping", "stopped"]
# A throwaway RSA public key, for tests only.
RSA_PUB = (
    "ssh-rsa "
    "AAAAB3NzaC1yc2EAAAADAQABAAABAQCeh2fpzykghemg1PqI4mO81njxJOA2S6KyxeIgwzykThpibYktNIt1XYK21BBkaIhT//SM"
    "xbcfPFKHq/vOpusAj8NC0O7Nsw9cDC082PmZodFrWZzL/3x6JwNtVUuheYJBbPn/smXq3PC2rBYtyX5PvnHm9iUqIE3HqR/bfL6t"
    "Nfs49zcsOS5hX3+C1UdOV1F5NCEXrgl6PI0r6//uX0m1XHuzvNsiKHv9FhPWBY2t1i8g6Eq7FZaRBzHm4XlEQZkZnjHTB65rLwVW"
    "LzczpWzm51IOWYVcHPmjvB7NAsuJQNFlsKzM5v00+GVN4fldBks6iKBgakFHGRFrpG83TSol"
    " test@example"
)
# EC2's fingerprint of RSA_PUB once imported: MD5 of its DER SubjectPublicKeyInfo (computed by the hand-written
# DER encoder this collection used before cryptography, and by
# `ssh-keygen -e -m PKCS8 -f rsa.pub | openssl pkey -pubin -outform DER | md5sum`).
RSA_PUB_MD5 = "64:4a:2b:67:94:2b:16:ad:a1:b8:e4:d6:8a:ba:b7:8d"


def ssh_ed25519(seed=b"\x01" * 32):
    blob = b"\x00\x00\x00\x0bssh-ed25519" + b"\x00\x00\x00\x20" + seed
    return "ssh-ed25519 " + base64.b64encode(blob).decode() + " test@example"


ED_PUB = ssh_ed25519()


def instance(iid, state="running", launched=T0, tags=None, groups=(SG,), **extra):
    inst = {
        "InstanceId": iid,
        "ImageId": AMI,
        "InstanceType": "t3.micro",
        "State": {"Code": STATE_CODES[state], "Name": state},
        "LaunchTime": launched,
        "SubnetId": SUBNET,
        "VpcId": VPC,
        "Placement": {"AvailabilityZone": "us-east-1a"},
        "PrivateIpAddress": "172.31.0.10",
        "SecurityGroups": [{"GroupId": g, "GroupName": "web"} for g in groups],
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1, "HttpEndpoint": "enabled"},
        "Tags": [{"Key": k, "Value": v} for k, v in (tags or {"Name": "web"}).items()],
    }
    inst.update(extra)
    return inst


def reservations(*instances):
    return {"Reservations": [{"ReservationId": "r-0123456789abcdef0", "Instances": list(instances)}]}


def id_filter(*ids):
    return {"Filters": [{"Name": "instance-id", "Values": list(ids)}]}
