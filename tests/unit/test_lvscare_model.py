"""lvscare's model: endpoint parsing, the health state machine, the plan of changes."""

from __future__ import annotations

import pytest

from lvscare.model import (
    Change,
    Endpoint,
    Health,
    HealthPolicy,
    Observed,
    ProbeResult,
    UserError,
    VirtualServer,
    check_families,
    desired_weights,
    plan,
)


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("10.103.97.2:6443", "10.103.97.2", 6443),
        (" 192.168.0.2:80 ", "192.168.0.2", 80),
        ("[fd00::2]:6443", "fd00::2", 6443),
        ("[FD00:0::2]:1", "fd00::2", 1),
    ],
)
def test_endpoint_parse(text, host, port):
    ep = Endpoint.parse(text, "--rs")
    assert (ep.host, ep.port) == (host, port)


def test_endpoint_str_brackets_ipv6():
    assert str(Endpoint("fd00::2", 6443)) == "[fd00::2]:6443"
    assert str(Endpoint("10.0.0.1", 80)) == "10.0.0.1:80"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("10.103.97.2", "has no port"),
        ("10.103.97.2:", "port must be a number"),
        ("10.103.97.2:99999", "port must be a number"),
        ("master1:6443", "is not an IP address"),
        ("fd00::2:6443", "put an IPv6 address in brackets"),
        ("[fd00::2]", "has no port"),
    ],
)
def test_endpoint_parse_errors_are_one_sentence_naming_the_value(text, words):
    with pytest.raises(UserError) as err:
        Endpoint.parse(text, "--vs")
    message = str(err.value)
    assert words in message
    assert message.startswith(f"--vs {text.strip()}")
    assert "\n" not in message and message.endswith(".")


def test_mixed_families_are_refused():
    with pytest.raises(UserError, match="use one address family"):
        check_families(Endpoint("10.0.0.1", 1), [Endpoint("fd00::1", 1)])


def test_health_state_machine():
    policy = HealthPolicy(fall=2, rise=2)
    h = Health()
    assert h.weight() == 1
    h.record(ProbeResult(False, "x"), policy)
    assert h.weight() == 0
    h.record(ProbeResult(False, "x"), policy)
    assert h.weight() is None
    h.record(ProbeResult(True, "ok"), policy)
    assert h.weight() is None
    h.record(ProbeResult(True, "ok"), policy)
    assert h.weight() == 1


def test_desired_weights_leave_out_removed_servers():
    a, b = Endpoint("10.0.0.1", 1), Endpoint("10.0.0.2", 1)
    health = {a: Health(), b: Health(healthy=False, removed=True)}
    assert desired_weights(health) == {a: 1}


def test_plan_orders_creation_removals_then_additions():
    vs = VirtualServer(Endpoint("10.0.0.100", 80))
    a, b, c = (Endpoint(f"10.0.0.{i}", 80) for i in (1, 2, 3))
    observed = Observed(exists=True, weights={a: 1, b: 1}, scheduler="rr")
    changes = plan(vs, {a: 0, c: 1}, observed)
    assert changes == [
        Change("remove", b, before=1),
        Change("set-weight", a, weight=0, before=1),
        Change("add", c, weight=1),
    ]
    assert plan(vs, {a: 1}, Observed(exists=False))[0] == Change("create-service")
    assert plan(vs, {a: 1, b: 1}, observed) == []
