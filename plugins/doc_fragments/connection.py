# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection options of every bakery.ec2 module.
    DOCUMENTATION = r"""
options:
  region:
    description:
      - The AWS region to use, for example C(us-east-1).
      - When not set, E(AWS_REGION) or E(AWS_DEFAULT_REGION) is used, then the region of the O(profile).
    type: str
    aliases: [aws_region, ec2_region]
  profile:
    description:
      - A named profile from the AWS shared configuration files.
      - When not set, E(AWS_PROFILE) is used.
    type: str
    aliases: [aws_profile]
  access_key:
    description:
      - AWS access key ID. When not set, E(AWS_ACCESS_KEY_ID) is used, then the usual boto3 credential chain.
    type: str
    aliases: [aws_access_key_id, aws_access_key]
  secret_key:
    description:
      - AWS secret access key. When not set, E(AWS_SECRET_ACCESS_KEY) is used. Never logged.
    type: str
    aliases: [aws_secret_access_key, aws_secret_key]
  session_token:
    description:
      - Session token of temporary credentials. When not set, E(AWS_SESSION_TOKEN) is used. Never logged.
    type: str
    aliases: [aws_session_token, security_token]
  endpoint_url:
    description:
      - URL of the EC2 API endpoint, for a local endpoint such as the bakery.ec2 sandbox.
      - When not set, E(AWS_ENDPOINT_URL_EC2), E(AWS_ENDPOINT_URL) or E(AWS_URL) is used,
        else the AWS endpoint of the region.
    type: str
    aliases: [aws_endpoint_url]
  validate_certs:
    description:
      - Whether to verify the endpoint's TLS certificate.
    type: bool
    default: true
requirements:
  - python >= 3.9
  - boto3 >= 1.34.0
  - botocore >= 1.34.0
notes:
  - Calls are retried with jittered exponential backoff on throttling, 5xx answers and lost connections.
    An error that remains fails the task with EC2's error code and message.
"""

    # The same options for the inventory plugin, which reads them from its configuration file.
    PLUGIN = r"""
options:
  region:
    description:
      - Region used for calls that are not made per region (DescribeRegions).
    type: str
    env:
      - name: AWS_REGION
      - name: AWS_DEFAULT_REGION
  profile:
    description: A named profile from the AWS shared configuration files.
    type: str
    env:
      - name: AWS_PROFILE
  access_key:
    description: AWS access key ID.
    type: str
    aliases: [aws_access_key_id, aws_access_key]
    env:
      - name: AWS_ACCESS_KEY_ID
  secret_key:
    description: AWS secret access key. Never logged.
    type: str
    aliases: [aws_secret_access_key, aws_secret_key]
    env:
      - name: AWS_SECRET_ACCESS_KEY
  session_token:
    description: Session token of temporary credentials. Never logged.
    type: str
    aliases: [aws_session_token, security_token]
    env:
      - name: AWS_SESSION_TOKEN
      - name: AWS_SECURITY_TOKEN
  endpoint_url:
    description: URL of the EC2 API endpoint, for a local endpoint such as the bakery.ec2 sandbox.
    type: str
    aliases: [aws_endpoint_url]
    env:
      - name: AWS_ENDPOINT_URL_EC2
      - name: AWS_ENDPOINT_URL
      - name: AWS_URL
  validate_certs:
    description: Whether to verify the endpoint's TLS certificate.
    type: bool
    default: true
"""
