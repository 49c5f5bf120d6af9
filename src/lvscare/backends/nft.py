"""nftables backend for kernels without IPVS: lvscare's own table, DNAT in the output hook.

    table ip lvscare {
        set weight0 { ... }              # real servers at weight 0: tracked, no new connections
        chain output {
            type nat hook output priority -100; policy accept;
            ip daddr VIP tcp dport PORT dnat ip to numgen inc mod N map { 0 : RS1 . PORT1, ... }
        }
        chain fallback {
            type filter hook output priority 0; policy accept;
            ip daddr VIP tcp dport PORT reject with tcp reset
        }
    }

Round robin over the real servers with weight > 0 (a server with weight w appears w times in the
map). With none usable the DNAT rule is left out, so the filter chain (which only sees packets
still addressed to the VIP, i.e. not DNATed) rejects with a TCP reset: connections fail fast.
(A reject inside the nat chain is accepted by nft but does not stop the packet.) Conntrack
keeps existing connections on their real server when the map changes. The table is replaced in
one transaction, and only when something differs: idle ticks only list it (through libnftables).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from lvscare.backends.base import Backend, BackendError
from lvscare.model import Change, Endpoint, Observed, VirtualServer
from lvscare.nftables import Nft, NftError

TABLE = "lvscare"
CHAIN = "output"
FALLBACK = "fallback"
DRAINED_SET = "weight0"


def _family(vs: VirtualServer) -> str:
    return "ip6" if vs.endpoint.family == 6 else "ip"


def _strip_handles(items: list[dict]) -> str:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "handle"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return json.dumps(strip(items), sort_keys=True)


def _element(ep: Endpoint) -> str:
    return f"{ep.host} . {ep.port}"


def table_script(vs: VirtualServer, desired: Mapping[Endpoint, int]) -> str:
    """The nft script that replaces lvscare's table with one holding `desired` (atomically)."""
    fam = _family(vs)
    addr_type = "ipv6_addr" if fam == "ip6" else "ipv4_addr"
    # A server of weight w takes w slots of the round robin.
    slots = [ep for ep in sorted(desired) for _ in range(max(desired[ep], 0))]
    drained = sorted(ep for ep, weight in desired.items() if weight == 0)
    match = f"{fam} daddr {vs.endpoint.host} tcp dport {vs.endpoint.port}"
    lines = [
        # Create-then-delete makes the delete valid when the table is missing: one transaction.
        f"table {fam} {TABLE} {{}}",
        f"delete table {fam} {TABLE}",
        f"table {fam} {TABLE} {{",
        '\tcomment "written by lvscare, repaired every interval: do not edit"',
        f"\tset {DRAINED_SET} {{",
        f"\t\ttype {addr_type} . inet_service",
        '\t\tcomment "real servers at weight 0: no new connections"',
    ]
    if drained:
        lines.append(f"\t\telements = {{ {', '.join(_element(ep) for ep in drained)} }}")
    lines += [
        "\t}",
        f"\tchain {CHAIN} {{",
        "\t\ttype nat hook output priority -100; policy accept;",
    ]
    if slots:
        pairs = ", ".join(f"{i} : {_element(ep)}" for i, ep in enumerate(slots))
        lines.append(
            f"\t\t{match} dnat {fam} to numgen inc mod {len(slots)} map {{ {pairs} }} "
            f'comment "lvscare {vs}: round robin"'
        )
    lines += [
        "\t}",
        f"\tchain {FALLBACK} {{",
        "\t\ttype filter hook output priority 0; policy accept;",
        f'\t\t{match} reject with tcp reset comment "lvscare {vs}: no usable real server"',
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _endpoint(value: Any) -> Optional[Endpoint]:
    """An Endpoint from a JSON `{"concat": [addr, port]}`, or None."""
    if isinstance(value, dict) and isinstance(value.get("concat"), list):
        parts = value["concat"]
        if len(parts) == 2 and isinstance(parts[0], str) and isinstance(parts[1], int):
            return Endpoint(parts[0], parts[1])
    return None


class _Parsed:
    """lvscare's table as read back: weights, whether the virtual server exists (its fallback
    rule is there), and anything foreign."""

    def __init__(self) -> None:
        self.rule_found = False
        self.weights: dict[Endpoint, int] = {}
        self.problems: list[str] = []


def parse_table(vs: VirtualServer, items: list[dict]) -> _Parsed:
    """Read weights from lvscare's table and note everything lvscare would not have written."""
    fam = _family(vs)
    parsed = _Parsed()
    drained: list[Endpoint] = []
    set_seen = chain_seen = fallback_seen = dnat_seen = False
    for item in items:
        kind, body = next(iter(item.items()))
        if kind == "table":
            continue
        if kind == "set" and body.get("name") == DRAINED_SET and not set_seen:
            set_seen = True
            for elem in body.get("elem", []):
                ep = _endpoint(elem)
                if ep is None:
                    parsed.problems.append(
                        f"set {DRAINED_SET} holds an element lvscare did not write"
                    )
                else:
                    drained.append(ep)
        elif kind == "chain" and body.get("name") == CHAIN and not chain_seen:
            chain_seen = True
            hook = (body.get("type"), body.get("hook"), body.get("prio"), body.get("policy"))
            if hook != ("nat", "output", -100, "accept"):
                parsed.problems.append(f"chain {CHAIN} is not lvscare's nat output chain")
        elif kind == "chain" and body.get("name") == FALLBACK and not fallback_seen:
            fallback_seen = True
            hook = (body.get("type"), body.get("hook"), body.get("prio"), body.get("policy"))
            if hook != ("filter", "output", 0, "accept"):
                parsed.problems.append(f"chain {FALLBACK} is not lvscare's filter output chain")
        elif kind == "rule" and body.get("chain") == CHAIN:
            weights = None if dnat_seen else _dnat_weights(vs, fam, body.get("expr", []))
            if weights is None:
                parsed.problems.append(f"chain {CHAIN} holds a rule lvscare did not write")
            else:
                dnat_seen = True
                parsed.weights.update(weights)
        elif kind == "rule" and body.get("chain") == FALLBACK:
            if parsed.rule_found or body.get("expr") != [*_matches(vs, fam), _REJECT]:
                parsed.problems.append(f"chain {FALLBACK} holds a rule lvscare did not write")
            else:
                parsed.rule_found = True
        else:
            name = body.get("name", "") if isinstance(body, dict) else ""
            parsed.problems.append(
                f"table {fam} {TABLE} holds a {kind} {name} lvscare did not write"
            )
    if not set_seen:
        parsed.problems.append(f"set {DRAINED_SET} is missing")
    if not chain_seen:
        parsed.problems.append(f"chain {CHAIN} is missing")
    for ep in drained:
        if ep in parsed.weights:
            parsed.problems.append(f"{ep} is both in the round robin and in set {DRAINED_SET}")
        else:
            parsed.weights[ep] = 0
    return parsed


_REJECT = {"reject": {"type": "tcp reset"}}


def _matches(vs: VirtualServer, fam: str) -> list[dict]:
    """JSON of `ip daddr VIP tcp dport PORT` as nft lists it."""
    return [
        {"match": {"op": "==", "left": {"payload": {"protocol": fam, "field": "daddr"}},
                   "right": vs.endpoint.host}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                   "right": vs.endpoint.port}},
    ]  # fmt: skip


def _dnat_weights(vs: VirtualServer, fam: str, exprs: list[dict]) -> Optional[dict[Endpoint, int]]:
    """Weights from lvscare's DNAT rule; None when the rule is not lvscare's."""
    if len(exprs) != 3 or exprs[:2] != _matches(vs, fam):
        return None
    try:
        mapping = exprs[2]["dnat"]["addr"]["map"]
        numgen = mapping["key"]["numgen"]
        pairs = mapping["data"]["set"]
    except (KeyError, TypeError):
        return None
    if numgen.get("mode") != "inc" or numgen.get("offset", 0) or numgen.get("mod") != len(pairs):
        return None
    weights: dict[Endpoint, int] = {}
    for index, (slot, target) in enumerate(sorted(pairs, key=lambda p: p[0])):
        ep = _endpoint(target)
        if slot != index or ep is None:
            return None
        weights[ep] = weights.get(ep, 0) + 1
    return weights


class NftBackend(Backend):
    """Keeps `table ip lvscare` (or `ip6`) equal to the desired state."""

    name = "nft"

    def __init__(self, nft: Optional[Nft] = None):
        self.nft = nft or Nft()
        # The table as lvscare last wrote it: the listing as printed (fast path: the same text
        # means nothing changed) and its JSON without handles (same content, new handles).
        # Only read() uses it, to save a parse; apply() needs nothing but its arguments.
        self._written_raw: Optional[str] = None
        self._written: Optional[str] = None
        self._written_observed: Optional[Observed] = None

    def _list(self, vs: VirtualServer) -> Optional[str]:
        try:
            return self.nft.list_raw(f"table {_family(vs)} {TABLE}")
        except NftError as exc:
            raise BackendError(f"cannot list nftables table {TABLE}: {exc}") from None

    def read(self, vs: VirtualServer) -> Observed:
        """Parse lvscare's table; the fast path is one listing compared with what was written."""
        raw = self._list(vs)
        if raw is None:
            return Observed(exists=False)
        if raw == self._written_raw and self._written_observed is not None:
            return self._written_observed
        items = Nft.parse(raw)
        if _strip_handles(items) == self._written and self._written_observed is not None:
            self._written_raw = raw
            return self._written_observed
        parsed = parse_table(vs, items)
        problems = list(parsed.problems)
        last = self._written_observed
        if (
            last is not None
            and not problems
            and parsed.rule_found
            and parsed.weights == last.weights
        ):
            # Same weights, different table: something lvscare's parser does not model changed.
            problems.append(f"table {_family(vs)} {TABLE} was changed by someone else")
        return Observed(
            exists=parsed.rule_found,
            weights=parsed.weights,
            scheduler="rr",
            problems=tuple(problems),
        )

    def apply(
        self,
        vs: VirtualServer,
        desired: Mapping[Endpoint, int],
        observed: Observed,
        changes: Sequence[Change],
    ) -> None:
        """Replace the table in one transaction, then remember how it reads back."""
        if not changes:
            return
        try:
            self.nft.run(table_script(vs, desired))
        except NftError as exc:
            raise BackendError(f"nftables refused lvscare's table: {exc}") from None
        raw = self._list(vs)
        self._written_raw = raw
        self._written = _strip_handles(Nft.parse(raw) if raw else [])
        self._written_observed = Observed(exists=True, weights=dict(desired), scheduler="rr")

    def clean(self, vs: VirtualServer) -> bool:
        """Delete lvscare's table."""
        self._written_raw = self._written = self._written_observed = None
        if self._list(vs) is None:
            return False
        try:
            self.nft.run(f"delete table {_family(vs)} {TABLE}\n")
        except NftError as exc:
            raise BackendError(f"cannot delete nftables table {TABLE}: {exc}") from None
        return True

    def pinned_clients(self, vs: VirtualServer, rs: Endpoint) -> list[Endpoint]:
        """Clients of conntrack's flows VIP -> `rs` (DNAT keeps them there)."""
        from lvscare.flows import conntrack_clients

        return conntrack_clients(vs.endpoint, rs)

    def describe(self, vs: VirtualServer) -> str:
        """`nft list table ip lvscare`."""
        return self.nft.list_text(f"table {_family(vs)} {TABLE}").rstrip()

    def close(self) -> None:
        """Free the libnftables context."""
        self.nft.close()
