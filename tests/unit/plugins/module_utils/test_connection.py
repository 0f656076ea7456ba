"""The connection (_connection) and the client (_client): TLS, endpoints per service, aws_config, denied calls,
NotFound of new resources."""

from __future__ import annotations

import json

import boto3
import pytest
from ansible_collections.bakery.ec2.plugins.module_utils import _client, _connection, _errors
from botocore.stub import Stubber

ENCODED = "AbCdEf0123-encoded_message"
DENIED = f"You are not authorized to perform this operation. Encoded authorization failure message: {ENCODED}"
DECODED = {
    "allowed": False,
    "explicitDeny": False,
    "matchedStatements": {"items": []},
    "failures": {"items": []},
    "context": {
        "principal": {"id": "AIDAEXAMPLE", "arn": "arn:aws:iam::123456789012:user/baker"},
        "action": "ec2:CreateImage",
        "resource": "arn:aws:ec2:us-east-1::image/*",
        "conditions": {"items": [{"key": "ec2:Region", "values": {"items": [{"value": "us-east-1"}]}}]},
    },
}


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("AWS_PROFILE", "AWS_CA_BUNDLE", "AWS_URL", "AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(var, raising=False)
    for service in ("EC2", "STS"):
        monkeypatch.delenv(f"AWS_ENDPOINT_URL_{service}", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return monkeypatch


def params(**extra):
    return {"region": "us-east-1", "access_key": "AKIATEST", "secret_key": "secret", **extra}


def stubbed(service):
    client = boto3.client(service, region_name="us-east-1", aws_access_key_id="AKIATEST", aws_secret_access_key="s")
    stubber = Stubber(client)
    stubber.activate()
    return client, stubber


# --- item 4: TLS -------------------------------------------------------------------------------------


def verify_of(client):
    return client.client._endpoint.http_session._verify


def test_aws_ca_bundle_environment_is_not_overridden(clean_env, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    clean_env.setenv("AWS_CA_BUNDLE", str(bundle))
    assert verify_of(_connection.build_client(params())) == str(bundle)


def test_aws_ca_bundle_option_and_validate_certs_false(clean_env, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert verify_of(_connection.build_client(params(aws_ca_bundle=str(bundle)))) == str(bundle)
    clean_env.setenv("AWS_CA_BUNDLE", str(bundle))
    assert verify_of(_connection.build_client(params(aws_ca_bundle=str(bundle), validate_certs=False))) is False


def test_missing_ca_bundle_is_refused_in_one_line(clean_env, tmp_path):
    with pytest.raises(_errors.AwsError) as caught:
        _connection.build_client(params(aws_ca_bundle=str(tmp_path / "nope.pem")))
    assert caught.value.code == "InvalidCABundle"
    assert str(tmp_path / "nope.pem") in str(caught.value)


# --- item 5: endpoints ---------------------------------------------------------------------------------


def test_endpoint_url_is_for_ec2_only_and_sts_follows_its_own_variable(clean_env):
    clean_env.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:2222")
    given = params(endpoint_url="http://127.0.0.1:3333")
    assert _connection.build_client(given).client.meta.endpoint_url == "http://127.0.0.1:3333"
    assert _connection.build_client(given, service="sts").client.meta.endpoint_url == "http://127.0.0.1:2222"


def test_service_specific_variables_win_over_the_global_one_as_in_botocore(clean_env):
    clean_env.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4444")
    clean_env.setenv("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:1111")
    assert _connection.build_client(params()).client.meta.endpoint_url == "http://127.0.0.1:1111"
    assert _connection.build_client(params(), service="sts").client.meta.endpoint_url == "http://127.0.0.1:4444"
    clean_env.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    assert _connection.build_client(params()).client.meta.endpoint_url == "https://ec2.us-east-1.amazonaws.com"


def test_elbv2_client_takes_the_endpoint_service_endpoint_chose(clean_env):
    clean_env.delenv("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", raising=False)
    local = params(endpoint_url=_connection.service_endpoint("elbv2", "http://127.0.0.1:4700"))
    assert _connection.build_client(local, service="elbv2").client.meta.endpoint_url == "http://127.0.0.1:4700"
    clean_env.setenv("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:1111")
    ec2_only = params(endpoint_url=_connection.service_endpoint("elbv2", "http://127.0.0.1:1111"))
    assert _connection.build_client(ec2_only, service="elbv2").client.meta.endpoint_url == (
        "https://elasticloadbalancing.us-east-1.amazonaws.com"
    )


def test_the_endpoint_option_reads_aws_url_only():
    assert _connection.CONNECTION_OPTIONS["endpoint_url"]["env"] == ["AWS_URL"]


# --- aws_config ---------------------------------------------------------------------------------------


def test_aws_config_overrides_ours_and_keeps_the_rest(clean_env):
    config = _connection.build_client(params(aws_config={"connect_timeout": 3, "proxies": {"https": "http://p:1"}}))
    config = config.client.meta.config
    assert config.connect_timeout == 3
    assert config.proxies == {"https": "http://p:1"}
    assert config.read_timeout == 60
    assert config.retries["total_max_attempts"] == 1


def test_aws_config_unknown_setting_fails_naming_it(clean_env):
    with pytest.raises(_errors.AwsError) as caught:
        _connection.build_client(params(aws_config={"connect_timeuot": 3}))
    assert caught.value.code == "InvalidConfig"
    assert "connect_timeuot" in caught.value.message


# --- item 12: denied calls ----------------------------------------------------------------------------


def test_denied_call_is_decoded_through_sts(clean_env):
    ec2, ec2_stub = stubbed("ec2")
    sts, sts_stub = stubbed("sts")
    ec2_stub.add_client_error("create_image", "UnauthorizedOperation", DENIED, 403)
    sts_stub.add_response(
        "decode_authorization_message", {"DecodedMessage": json.dumps(DECODED)}, {"EncodedMessage": ENCODED}
    )
    client = _client.AwsClient(ec2, sts_client=lambda: _client.AwsClient(sts))
    with pytest.raises(_errors.AwsError) as caught:
        client.call("create_image", InstanceId="i-0123456789abcdef0", Name="web")
    assert str(caught.value) == (
        "CreateImage: UnauthorizedOperation: You are not authorized to perform this operation. Decoded reason: "
        "ec2:CreateImage on arn:aws:ec2:us-east-1::image/* denied to arn:aws:iam::123456789012:user/baker "
        "(no statement allows it); context: ec2:Region=us-east-1"
    )
    sts_stub.assert_no_pending_responses()


def test_denied_call_that_cannot_be_decoded_says_how_to_decode_it(clean_env):
    ec2, ec2_stub = stubbed("ec2")
    sts, sts_stub = stubbed("sts")
    ec2_stub.add_client_error("run_instances", "UnauthorizedOperation", DENIED, 403)
    sts_stub.add_client_error("decode_authorization_message", "AccessDenied", "not allowed", 403)
    client = _client.AwsClient(ec2, sts_client=lambda: _client.AwsClient(sts))
    with pytest.raises(_errors.AwsError) as caught:
        client.call("run_instances", ImageId="ami-0123456789abcdef0", MinCount=1, MaxCount=1)
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        "RunInstances: UnauthorizedOperation: You are not authorized to perform this operation. The reason could "
        f"not be decoded (AccessDenied): decode it with 'aws sts decode-authorization-message --encoded-message "
        f"{ENCODED}' (needs sts:DecodeAuthorizationMessage)"
    )


def test_build_client_gives_the_decoder_an_sts_client_of_the_same_settings(clean_env):
    clean_env.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:2222")
    client = _connection.build_client(params(endpoint_url="http://127.0.0.1:3333"))
    sts = client.sts_client()
    assert sts is client.sts_client()  # built once
    assert sts.client.meta.service_model.service_name == "sts"
    assert sts.client.meta.endpoint_url == "http://127.0.0.1:2222"


def test_a_denial_without_encoded_message_is_left_as_is():
    ec2, ec2_stub = stubbed("ec2")
    ec2_stub.add_client_error("describe_images", "UnauthorizedOperation", "You are not authorized.", 403)
    with pytest.raises(_errors.AwsError) as caught:
        _client.AwsClient(ec2, sts_client=lambda: pytest.fail("no decode wanted")).call("describe_images")
    assert str(caught.value) == "DescribeImages: UnauthorizedOperation: You are not authorized."


# --- the actions called -------------------------------------------------------------------------------


def test_actions_are_recorded_when_asked():
    ec2, ec2_stub = stubbed("ec2")
    ec2_stub.add_response("describe_images", {"Images": []})
    ec2_stub.add_client_error("create_tags", "InvalidAMIID.NotFound", "gone")
    client = _client.AwsClient(ec2)
    client.actions = set()
    client.call("describe_images")
    with pytest.raises(_errors.AwsError):
        client.call("create_tags", Resources=["ami-0123456789abcdef0"], Tags=[])
    assert sorted(client.actions) == ["ec2:CreateTags", "ec2:DescribeImages"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"region": None, "access_key": "a", "secret_key": "b"}, "NoRegion"),
        ({"region": "moon-1", "access_key": "a", "secret_key": "b"}, "InvalidRegion"),
        ({"region": "us-east-1", "profile": "does-not-exist-anywhere"}, "ProfileNotFound"),
        ({"region": "us-east-1", "access_key": "a", "secret_key": "b", "endpoint_url": "not a url"}, "InvalidEndpoint"),
    ],
)
def test_build_client_reports_bad_settings(monkeypatch, tmp_path, params, code):
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    with pytest.raises(_errors.AwsError) as caught:
        _connection.build_client(params)
    assert caught.value.code == code


def test_build_client_without_credentials(monkeypatch, tmp_path):
    for var in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(_errors.AwsError) as caught:
        _connection.build_client({"region": "us-east-1"})
    assert caught.value.code == "NoCredentials"


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"secret_key": "s"}, "secret_key (AWS_SECRET_ACCESS_KEY) is set but access_key"),
        ({"access_key": "a"}, "access_key (AWS_ACCESS_KEY_ID) is set but secret_key"),
        ({"session_token": "t"}, "session_token (AWS_SESSION_TOKEN) is set without access_key"),
    ],
)
def test_incomplete_keys_are_refused_before_botocore_sees_them(params, named):
    with pytest.raises(_errors.AwsError) as caught:
        _connection.connection_params_from(params.get)
    assert caught.value.code == "PartialCredentials"
    assert named in str(caught.value)
    assert "s" not in {caught.value.message} and "'t'" not in caught.value.message
