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
      - URL of the EC2 API endpoint, for a local endpoint such as the bakery.ec2 sandbox. STS (to decode a denied
        call) always uses its own endpoint. SSM (O(bakery.ec2.ami_find#module:ssm_parameter)), ELBv2
        (O(bakery.ec2.ec2_launch#module:target_groups)) and Auto Scaling (M(bakery.ec2.ami_retire)) use their own
        variable (E(AWS_ENDPOINT_URL_SSM), E(AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2),
        E(AWS_ENDPOINT_URL_AUTO_SCALING)) when set, else this URL unless it came from
        E(AWS_ENDPOINT_URL_EC2) (a local endpoint such as the sandbox serves every service), else their own endpoint.
      - When not set, E(AWS_URL) is used. Otherwise botocore chooses each service's endpoint as it defines it, from
        E(AWS_ENDPOINT_URL_EC2) (E(AWS_ENDPOINT_URL_STS) for STS), then E(AWS_ENDPOINT_URL), then the
        C(endpoint_url) settings of the profile, else the AWS endpoint of the region.
        E(AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true) turns those settings off.
    type: str
    aliases: [aws_endpoint_url]
  aws_ca_bundle:
    description:
      - Path of a PEM file of CA certificates to verify the endpoints' TLS certificates with, instead of
        botocore's default bundle.
      - When not set, E(AWS_CA_BUNDLE) is used, then the C(ca_bundle) setting of the profile.
      - Ignored when O(validate_certs=false).
    type: path
  validate_certs:
    description:
      - Whether to verify the endpoints' TLS certificates.
      - V(false) turns verification off, whatever O(aws_ca_bundle) or E(AWS_CA_BUNDLE) say. Prefer
        O(aws_ca_bundle) for an endpoint with a private CA.
    type: bool
    default: true
  aws_config:
    description:
      - Settings of botocore's client configuration
        (L(botocore.config.Config,https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html)),
        for example C(connect_timeout), C(read_timeout) or C(proxies). They override the collection's own
        (10 s to connect, 60 s to read, 32 connections).
      - The collection retries throttling, 5xx answers and lost connections itself, with botocore making one
        attempt per call; a C(retries) setting here adds botocore's attempts underneath.
      - An unknown setting fails the task, naming it, before any call.
    type: dict
  debug_botocore_endpoint_logs:
    description:
      - When V(true), the result has RV(ignore:resource_actions), the sorted list of the AWS actions the task
        called (such as C(ec2:DescribeImages)), as IAM names them; useful to write a least-privilege policy.
      - When not set, E(ANSIBLE_DEBUG_BOTOCORE_LOGS) is used.
    type: bool
    default: false
requirements:
  - python >= 3.9
  - boto3 >= 1.34.0
  - botocore >= 1.34.0
notes:
  - Calls are retried with jittered exponential backoff on throttling, 5xx answers and lost connections.
    An error that remains fails the task with EC2's error code and message.
  - When EC2 denies a call (C(UnauthorizedOperation)) with an encoded reason, the reason is decoded with
    C(sts:DecodeAuthorizationMessage) and shown in the message; without that permission the message gives the
    command that decodes it.
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
    description:
      - URL of the EC2 API endpoint, for a local endpoint such as the bakery.ec2 sandbox. It applies to EC2 only;
        STS (O(assume_role_arn)) uses its own endpoint.
      - When not set, botocore chooses each service's endpoint as it defines it, from E(AWS_ENDPOINT_URL_EC2)
        (E(AWS_ENDPOINT_URL_STS) for STS), then E(AWS_ENDPOINT_URL), then the profile's settings.
    type: str
    aliases: [aws_endpoint_url]
    env:
      - name: AWS_URL
  aws_ca_bundle:
    description:
      - Path of a PEM file of CA certificates to verify the endpoints' TLS certificates with.
      - When not set, the C(ca_bundle) setting of the profile is used, else botocore's default bundle.
      - Ignored when O(validate_certs=false).
    type: path
    env:
      - name: AWS_CA_BUNDLE
  validate_certs:
    description:
      - Whether to verify the endpoints' TLS certificates. V(false) turns verification off, whatever
        O(aws_ca_bundle) says.
    type: bool
    default: true
  aws_config:
    description:
      - Settings of botocore's client configuration (botocore.config.Config), for example C(connect_timeout)
        or C(proxies). They override the plugin's own.
    type: dict
"""
