"""Host lists as users type them."""

from __future__ import annotations

import pytest

from sealos.addresses import HostAddress, find_duplicates, parse_hosts
from sealos.errors import SpecError


def test_plain_ip_port_and_names():
    hosts = parse_hosts(["10.0.0.2", "10.0.0.3:2222", "Node-1.example.com", "node2:23"])
    assert hosts == [
        HostAddress("10.0.0.2", 22),
        HostAddress("10.0.0.3", 2222),
        HostAddress("node-1.example.com", 22),
        HostAddress("node2", 23),
    ]
    assert str(hosts[0]) == "10.0.0.2" and str(hosts[1]) == "10.0.0.3:2222"


def test_default_port_applies_to_hosts_without_one():
    assert parse_hosts(["10.0.0.2", "10.0.0.3:24"], default_port=2200) == [
        HostAddress("10.0.0.2", 2200),
        HostAddress("10.0.0.3", 24),
    ]


def test_ranges_full_short_with_port_and_commas():
    hosts = parse_hosts(["10.0.0.2-10.0.0.4,10.0.1.9-10:2022"])
    assert [str(h) for h in hosts] == [
        "10.0.0.2",
        "10.0.0.3",
        "10.0.0.4",
        "10.0.1.9:2022",
        "10.0.1.10:2022",
    ]


def test_range_across_octet_boundary():
    hosts = parse_hosts(["10.0.0.254-10.0.1.1"])
    assert [h.host for h in hosts] == ["10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"]


def test_ipv6_forms():
    assert parse_hosts(["fd00::2", "[fd00::3]:2222"]) == [
        HostAddress("fd00::2", 22),
        HostAddress("fd00::3", 2222),
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("10.0.0.9-10.0.0.2", "ends before it starts"),
        ("10.0.0.2-10.9.0.2", "spans"),
        ("10.0.0.2:0", "port"),
        ("10.0.0.2:ssh", "port"),
        ("10.0.0.300", "neither an IP"),
        ("bad_name!", "neither an IP"),
        ("10.0.0.2-fd00::1", "not a valid range"),
    ],
)
def test_bad_entries_say_what_is_wrong(text, words):
    with pytest.raises(SpecError) as e:
        parse_hosts([text], flag="--master")
    assert words in str(e.value) and "--master" in str(e.value)


def test_duplicates_found_once():
    hosts = parse_hosts(["10.0.0.2", "10.0.0.2-10.0.0.3", "10.0.0.2", "10.0.0.2:23"])
    assert find_duplicates(hosts) == [HostAddress("10.0.0.2")]


@pytest.mark.parametrize("text", ["fe80::1%eth0", "[fe80::1%eth0]:22", "[fe80::1%2]"])
def test_scoped_ipv6_hosts_are_refused_in_one_sentence(text):
    with pytest.raises(SpecError, match="scoped IPv6 address"):
        parse_hosts([text], flag="--master")
