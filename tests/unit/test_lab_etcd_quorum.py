"""The stand-in's etcd membership model (no root): who votes, when a write has a quorum, and
etcd's strict reconfiguration check for `member add`."""

from __future__ import annotations

from sealos_lab.package.standin.apiserver.membership import (
    NOT_ENOUGH_STARTED,
    TOO_MANY_LEARNERS,
    etcdctl_id,
    find_member,
    has_quorum,
    new_member,
    peer_url,
    refuse_add,
    started_members,
)
from sealos_lab.package.standin.versions import joins_etcd_as_learner, parse_kube_version


def members(*spec: tuple[str, bool]) -> list[dict]:
    return [new_member(name, f"https://10.0.0.{i + 1}:6443", learner) for i, (name, learner) in
            enumerate(spec)]  # fmt: skip


def test_a_joining_master_votes_up_to_1_28_and_learns_from_1_29():
    for minor, learner in [(14, False), (20, False), (28, False), (29, True), (31, True)]:
        version = parse_kube_version(f"v1.{minor}.0")
        assert version is not None
        assert joins_etcd_as_learner(version) is learner, minor


def test_a_second_voter_that_is_down_takes_the_quorum_away():
    two = members(("m1", False), ("m2", False))
    assert has_quorum(two, {"m1", "m2"})
    assert not has_quorum(two, {"m1"})  # 1 of 2 voters: no majority


def test_a_learner_that_is_down_does_not_count():
    with_learner = members(("m1", False), ("m2", True))
    assert has_quorum(with_learner, {"m1"})
    assert not has_quorum(with_learner, {"m2"})  # the learner alone is no quorum


def test_three_voters_survive_one_down_not_two():
    three = members(("m1", False), ("m2", False), ("m3", False))
    assert has_quorum(three, {"m1", "m2"})
    assert not has_quorum(three, {"m1"})


def test_no_members_yet_is_a_lone_init_master():
    assert has_quorum([], set())


def test_adding_a_voter_needs_the_started_voters_to_stay_a_quorum():
    one = members(("m1", False))
    assert refuse_add(one, {"m1"}, learner=False) is None  # 1 -> 2 is allowed (etcd's case)
    half_joined = members(("m1", False), ("m2", False))
    # a re-run's join while the half-joined member never started: etcd refuses
    assert refuse_add(half_joined, {"m1"}, learner=False) == NOT_ENOUGH_STARTED
    assert refuse_add(half_joined, {"m1", "m2"}, learner=False) is None


def test_one_learner_at_a_time():
    one = members(("m1", False))
    assert refuse_add(one, {"m1"}, learner=True) is None
    assert refuse_add(members(("m1", False), ("m2", True)), {"m1"}, True) == TOO_MANY_LEARNERS


def test_members_are_named_by_their_peer_url_and_found_by_id_or_name():
    member = new_member("m2", "https://10.0.0.2:6443", False)
    assert member["peerURL"] == peer_url("https://10.0.0.2:6443") == "https://10.0.0.2:2380"
    assert len(member["id"]) == 16
    assert find_member([member], etcdctl_id(member)) is member
    assert find_member([member], "m2") is member
    assert find_member([member], "ffff") is None


def test_the_first_member_is_init_bootstrapping_the_cluster():
    assert refuse_add([], set(), learner=False) is None


def test_a_member_added_again_under_its_old_name_is_unstarted_until_it_answers():
    """A cleaned master joining back: its name answered in its first life, but the member
    `member add` made now has not run yet (etcd: unstarted, no name), as after a failed join."""
    m1, m2 = members(("m1", False), ("m2", False))
    added = m2["added"]
    assert started_members([m1, m2], "m1", {"m2": added - 60}) == {"m1"}  # seen before the add
    assert started_members([m1, m2], "m1", {}) == {"m1"}  # never seen
    assert started_members([m1, m2], "m1", {"m2": added + 1}) == {"m1", "m2"}  # ran since
    assert started_members([m1, m2], "m2", {}) == {"m2"}  # an apiserver's own member runs
