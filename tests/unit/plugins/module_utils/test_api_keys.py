"""API key hashing of the gateway: map lines, and bad input that names the variable."""

from __future__ import annotations

import hashlib

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.llm.plugins.filter.api_key import api_key_hash
from ansible_collections.onprem.llm.plugins.module_utils._api_keys import (
    ApiKeyError,
    api_key_map,
    hash_api_keys,
    key_hash,
)

KEY_A = "sk-team-a-0123456789abcdef0123456789abcdef"
KEY_B = "sk-team-b-fedcba9876543210fedcba9876543210"
KEY_B_NEXT = "sk-team-b-next-00000000000000000000000000"


def test_hash_is_lowercase_hex_sha256_as_haproxy_computes_it():
    # HAProxy: req.hdr(authorization),regsub(...),sha2(256),hex,lower
    assert key_hash(KEY_A) == hashlib.sha256(KEY_A.encode()).hexdigest()
    assert key_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_map_lines_are_sorted_and_hold_no_key():
    lines = api_key_hash({"team-b": KEY_B, "team-a": KEY_A})
    assert lines == sorted([f"{key_hash(KEY_A)} team-a", f"{key_hash(KEY_B)} team-b"])
    assert not any(KEY_A in line or KEY_B in line for line in lines)


def test_a_tenant_may_hold_several_keys_for_rotation():
    hashes = hash_api_keys({"team-b": [KEY_B, KEY_B_NEXT]}, "haproxy_api_keys")
    assert hashes == {key_hash(KEY_B): "team-b", key_hash(KEY_B_NEXT): "team-b"}


def test_map_file_content_ends_with_newline_and_empty_input_gives_empty_map():
    assert api_key_map({"team-a": KEY_A}, "v") == f"{key_hash(KEY_A)} team-a\n"
    assert api_key_map({}, "v") == ""


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"team-a": "short-key"}, "haproxy_api_keys.team-a: API key is 9 characters long"),
        ({"team-a": KEY_A + " x"}, "printable ASCII without spaces"),
        ({"team-a": KEY_A, "team-b": KEY_A}, "already given to tenant 'team-a'"),
        ({"team a": KEY_A}, "tenant 'team a' must be"),
        ({"team-a": 12345}, "must map to a key"),
        ({"team-a": []}, "must map to a key"),
        (["team-a", KEY_A], "expected a mapping of tenant to API key"),
        ({"team-b": [KEY_B, "tiny"]}, "haproxy_api_keys.team-b[1]: API key is 4"),
    ],
)
def test_bad_input_names_variable_and_tenant_never_the_key(keys, expected):
    with pytest.raises(AnsibleFilterError) as error:
        api_key_hash(keys, "haproxy_api_keys")
    message = str(error.value)
    assert expected in message
    assert KEY_A not in message
    assert "short-key" not in message


def test_minimum_length_is_configurable_but_not_below_16():
    assert hash_api_keys({"t": "x" * 20}, "v", min_length=20)
    with pytest.raises(ApiKeyError, match="at least 21"):
        hash_api_keys({"t": "x" * 20}, "v", min_length=21)
    with pytest.raises(ApiKeyError, match=">= 16"):
        hash_api_keys({"t": "x" * 20}, "v", min_length=8)
