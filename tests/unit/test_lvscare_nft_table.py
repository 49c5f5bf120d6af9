"""The nftables backend's table, written and parsed without a kernel.

The JSON below is what `nft -j list table ip lvscare` (nft 1.0.6) printed for a table that
lvscare wrote; the integration tests check the same against a real kernel.
"""

from __future__ import annotations

import json

from lvscare.backends.nft import NftBackend, parse_table, table_script
from lvscare.model import Endpoint, Observed, VirtualServer

VS = VirtualServer(Endpoint("10.250.100.100", 6443))
A, B, C = (Endpoint(f"10.250.100.1{i}", 8080) for i in (1, 2, 3))


def listed(slots: list[Endpoint], drained: list[Endpoint]) -> list[dict]:
    """nft's JSON for lvscare's table (handles included, metainfo dropped)."""
    drained_set = {
        "family": "ip", "name": "weight0", "table": "lvscare",
        "type": ["ipv4_addr", "inet_service"], "handle": 2,
        "comment": "real servers at weight 0: no new connections",
    }  # fmt: skip
    if drained:
        drained_set["elem"] = [{"concat": [ep.host, ep.port]} for ep in drained]
    match = [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                   "right": "10.250.100.100"}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                   "right": 6443}},
    ]  # fmt: skip
    items = [
        {"table": {"family": "ip", "name": "lvscare", "handle": 7}},
        {"set": drained_set},
        {"chain": {"family": "ip", "table": "lvscare", "name": "output", "handle": 1,
                   "type": "nat", "hook": "output", "prio": -100, "policy": "accept"}},
        {"chain": {"family": "ip", "table": "lvscare", "name": "fallback", "handle": 3,
                   "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}},
    ]  # fmt: skip
    if slots:
        dnat = {"dnat": {"family": "ip", "addr": {"map": {
            "key": {"numgen": {"mode": "inc", "mod": len(slots), "offset": 0}},
            "data": {"set": [[i, {"concat": [ep.host, ep.port]}] for i, ep in enumerate(slots)]},
        }}}}  # fmt: skip
        items.append({"rule": {"family": "ip", "table": "lvscare", "chain": "output",
                               "handle": 4, "comment": "x", "expr": [*match, dnat]}})  # fmt: skip
    reject = {"reject": {"type": "tcp reset"}}
    items.append({"rule": {"family": "ip", "table": "lvscare", "chain": "fallback",
                           "handle": 5, "comment": "y", "expr": [*match, reject]}})  # fmt: skip
    return items


def test_script_round_robins_over_weight_1_and_tracks_weight_0():
    script = table_script(VS, {A: 1, B: 0, C: 1})
    assert "table ip lvscare {}\ndelete table ip lvscare\ntable ip lvscare {" in script
    assert "type nat hook output priority -100; policy accept;" in script
    assert (
        "ip daddr 10.250.100.100 tcp dport 6443 dnat ip to numgen inc mod 2 map "
        "{ 0 : 10.250.100.11 . 8080, 1 : 10.250.100.13 . 8080 }"
    ) in script
    assert "elements = { 10.250.100.12 . 8080 }" in script


def test_script_leaves_dnat_out_when_nothing_is_usable_so_the_fallback_rejects():
    script = table_script(VS, {A: 0})
    assert "type filter hook output priority 0; policy accept;" in script
    assert "ip daddr 10.250.100.100 tcp dport 6443 reject with tcp reset" in script
    assert "numgen" not in script
    assert "reject with tcp reset" in table_script(VS, {A: 1}), "the fallback is always there"


def test_script_gives_weight_n_n_slots():
    script = table_script(VS, {A: 2, C: 1})
    assert (
        "numgen inc mod 3 map { 0 : 10.250.100.11 . 8080, 1 : 10.250.100.11 . 8080, 2 :" in script
    )


def test_ipv6_table():
    vs6 = VirtualServer(Endpoint("fd00::100", 6443))
    script = table_script(vs6, {Endpoint("fd00::11", 8080): 1})
    assert "table ip6 lvscare {" in script and "type ipv6_addr . inet_service" in script
    assert "ip6 daddr fd00::100 tcp dport 6443 dnat ip6 to numgen" in script


def test_parse_reads_weights_back():
    parsed = parse_table(VS, listed([A, C], [B]))
    assert parsed.rule_found and parsed.problems == []
    assert parsed.weights == {A: 1, B: 0, C: 1}
    assert parse_table(VS, listed([A, A, C], [])).weights == {A: 2, C: 1}
    empty = parse_table(VS, listed([], [A]))
    assert empty.rule_found and empty.weights == {A: 0}


def test_parse_flags_foreign_rules_chains_and_sets():
    items = listed([A], [])
    items.append({"rule": {"family": "ip", "table": "lvscare", "chain": "output", "handle": 9,
                           "expr": [{"counter": {"packets": 0, "bytes": 0}}]}})  # fmt: skip
    items.append({"chain": {"family": "ip", "table": "lvscare", "name": "sneaky", "handle": 8}})
    problems = parse_table(VS, items).problems
    assert "chain output holds a rule lvscare did not write" in problems
    assert "table ip lvscare holds a chain sneaky lvscare did not write" in problems


def test_parse_flags_a_rule_for_another_address_and_a_changed_hook():
    items = listed([A], [])
    items[4]["rule"]["expr"][0]["match"]["right"] = "10.250.100.200"
    items[2]["chain"]["prio"] = 0
    parsed = parse_table(VS, items)
    assert parsed.weights == {}
    assert "chain output holds a rule lvscare did not write" in parsed.problems
    assert "chain output is not lvscare's nat output chain" in parsed.problems


def test_parse_without_the_fallback_rule_says_the_virtual_server_is_missing():
    items = listed([A], [])
    del items[-1]
    assert not parse_table(VS, items).rule_found


class FakeNft:
    """Serves a listing and records scripts, like libnftables would."""

    def __init__(self, items):
        self.items = items
        self.scripts: list[str] = []

    def list_raw(self, what):
        return None if self.items is None else json.dumps({"nftables": self.items})

    def run(self, script):
        self.scripts.append(script)

    def close(self):
        pass


def test_backend_rewrites_only_when_something_differs():
    nft = FakeNft(listed([A, C], [B]))
    backend = NftBackend(nft)  # type: ignore[arg-type]
    observed = backend.read(VS)
    assert observed == Observed(exists=True, weights={A: 1, B: 0, C: 1}, scheduler="rr")
    backend.apply(VS, {A: 1, B: 0, C: 1}, observed, [])
    assert nft.scripts == []
    from lvscare.model import Change

    backend.apply(VS, {A: 1, B: 0, C: 1}, observed, [Change("repair", detail="x")])
    assert len(nft.scripts) == 1
    # Unchanged listing afterwards: the fast path says "as written", nothing to do.
    assert backend.read(VS).problems == ()
    # Someone edits a part lvscare's parser does not model (the set's comment).
    nft.items[1]["set"]["comment"] = "edited"
    assert backend.read(VS).problems == ("table ip lvscare was changed by someone else",)


def test_backend_reports_a_missing_table():
    nft = FakeNft(None)
    assert NftBackend(nft).read(VS) == Observed(exists=False)  # type: ignore[arg-type]
