"""etcd membership as the stand-in apiserver models it (each master's apiserver stands for its
etcd member too).

A member is a `peers` object: name, url (the apiserver), peerURL (https://IP:2380, as kubeadm
names it), id (etcd prints member IDs as 16 hex digits), learner. Voting members count toward
quorum; learners do not (etcd 3.4+). A write needs a majority of voting members alive, as an
etcd write needs a committed raft entry; membership changes need it too, so a two-member cluster
with one member down can neither write nor remove that member (etcd's runtime-reconfiguration
guide: "Reconfiguration requests can only be processed when a majority of cluster members are
functioning"); `etcd --force-new-cluster` on the survivor is etcd's way out.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Optional

TIMED_OUT = "etcdserver: request timed out"
NOT_ENOUGH_STARTED = "etcdserver: re-configuration failed due to not enough started members"
TOO_MANY_LEARNERS = "etcdserver: too many learner members in cluster"
MEMBER_NOT_FOUND = "etcdserver: member not found"
LEARNER_NOT_READY = "etcdserver: can only promote a learner member which is in sync with leader"
NOT_A_LEARNER = "etcdserver: can only promote a learner member"


def peer_url(url: str) -> str:
    """The etcd peer URL of a master whose apiserver serves at `url` (https://IP:6443)."""
    host = url.split("://", 1)[-1].rsplit(":", 1)[0]
    return f"https://{host}:2380"


def member_id(name: str, url: str) -> str:
    """A stable 16-hex-digit member ID (etcd's are random uint64s, printed in hex)."""
    return hashlib.sha256(f"{name}|{peer_url(url)}".encode()).hexdigest()[:16]


def new_member(name: str, url: str, learner: bool) -> dict[str, Any]:
    """The record `member add` (or init, for the first member) creates."""
    return {
        "name": name,
        "url": url,
        "peerURL": peer_url(url),
        "id": member_id(name, url),
        "learner": learner,
        "added": time.time(),  # when `member add` made it (wall clock, as peers compare it)
    }


def started_members(
    members: list[dict[str, Any]], self_name: str, last_seen: dict[str, float]
) -> set[str]:
    """etcd's "started", per member: it answered since `member add` made it (`last_seen`: name
    -> wall-clock time it last answered). A member removed and added again under the same name,
    as a cleaned master joining back, is unstarted until it runs again."""
    return {
        m["name"]
        for m in members
        if m["name"] == self_name or last_seen.get(m["name"], -1.0) >= m.get("added", 0.0)
    }


def voters(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in members if not m.get("learner")]


def has_quorum(members: list[dict[str, Any]], alive: set[str]) -> bool:
    """A majority of the voting members is alive (no members recorded: a lone init master)."""
    voting = voters(members)
    if not voting:
        return True
    up = sum(1 for m in voting if m["name"] in alive)
    return up * 2 > len(voting)


def refuse_add(members: list[dict[str, Any]], started: set[str], learner: bool) -> Optional[str]:
    """etcd's strict reconfiguration check for `member add`, None when allowed.

    A learner is always allowed, one at a time; a voter only when the started voting members
    would still be a quorum of the bigger cluster (IsReadyToAddVotingMember).
    """
    if learner:
        if any(m.get("learner") for m in members):
            return TOO_MANY_LEARNERS
        return None
    voting = voters(members)
    if not voting:
        return None  # the first member: init bootstraps the cluster with it
    size = len(voting) + 1
    up = sum(1 for m in voting if m["name"] in started)
    if up == 1 and size == 2:
        return None
    return None if up >= size // 2 + 1 else NOT_ENOUGH_STARTED


def find_member(members: list[dict[str, Any]], member: str) -> Optional[dict[str, Any]]:
    """A member by ID (hex, as etcdctl takes it) or by name."""
    wanted = member.lower().lstrip("0") or "0"
    for m in members:
        if (m["id"].lstrip("0") or "0") == wanted or m["name"] == member:
            return m
    return None


def etcdctl_id(member: dict[str, Any]) -> str:
    """How `etcdctl member list` prints an ID (hex, no leading zeros)."""
    return member["id"].lstrip("0") or "0"
