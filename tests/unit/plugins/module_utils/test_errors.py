"""not_found: None for the NotFound codes named, the error otherwise."""

from __future__ import annotations

import pytest
from ansible_collections.bakery.ec2.plugins.module_utils import _errors


def test_not_found_gives_none_only_for_the_codes_named(ec2_client):
    client, stub = ec2_client
    stub.add_client_error("describe_key_pairs", "InvalidKeyPair.NotFound", "no such key")
    assert _errors.not_found(lambda: client.call("describe_key_pairs"), ("InvalidKeyPair.NotFound",)) is None
    stub.add_client_error("describe_key_pairs", "UnauthorizedOperation", "denied")
    with pytest.raises(_errors.AwsError, match="UnauthorizedOperation"):
        _errors.not_found(lambda: client.call("describe_key_pairs"), ("InvalidKeyPair.NotFound",))
    stub.add_response("describe_key_pairs", {"KeyPairs": []})
    assert _errors.not_found(lambda: client.call("describe_key_pairs")["KeyPairs"], ("InvalidKeyPair.NotFound",)) == []
