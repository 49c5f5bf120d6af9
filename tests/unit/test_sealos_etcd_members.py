"""Which etcd member the installer may remove for a host, and how it reads etcdctl (no hosts)."""

from __future__ import annotations

import subprocess

import yaml

from sealos.etcd_members import (
    EtcdMember,
    force_new_cluster_script,
    member_of,
    only_blocker,
    parse_member_list,
)

LISTED = """\
8395a48bda04535c, started, m1, https://10.0.0.11:2380, https://10.0.0.11:2379, false
5e2fbd5097f4aba9, unstarted, , https://10.0.0.12:2380, , false
"""


def test_member_list_lines_are_read_with_unstarted_members():
    m1, m2 = parse_member_list(LISTED + "some warning line\n")
    assert (m1.member_id, m1.started, m1.name, m1.learner) == (
        "8395a48bda04535c",
        True,
        "m1",
        False,
    )
    assert (m2.started, m2.name, m2.peer_urls) == (False, "", ("https://10.0.0.12:2380",))


def test_only_the_member_proven_to_be_the_host_is_chosen():
    members = parse_member_list(LISTED)
    assert member_of(members, "10.0.0.12", "m2") == members[1]  # unstarted: no name yet
    assert member_of(members, "10.0.0.11", "m1") == members[0]
    assert member_of(members, "10.0.0.11", "other-host") is None  # same URL, another name
    assert member_of(members, "10.0.0.13", "m3") is None


def test_force_new_cluster_only_when_that_member_alone_costs_the_quorum():
    members = parse_member_list(LISTED)
    assert only_blocker(members, "10.0.0.11", members[1])
    assert not only_blocker(members, "10.0.0.99", members[1])  # not run on the survivor
    third = EtcdMember("aa", False, "", ("https://10.0.0.13:2380",), False)
    assert not only_blocker([*members, third], "10.0.0.11", members[1])  # another one down
    learner = EtcdMember("bb", False, "", ("https://10.0.0.12:2380",), True)
    assert not only_blocker([members[0], learner], "10.0.0.11", learner)


def test_the_flag_goes_into_the_etcd_command_of_a_kubeadm_manifest(tmp_path):
    manifest = tmp_path / "etcd.yaml"
    pod = {"spec": {"containers": [{"command": ["etcd", "--data-dir=/var/lib/etcd"]}]}}
    manifest.write_text(yaml.safe_dump(pod, sort_keys=False))
    script = force_new_cluster_script()
    sed = next(part for part in script.split("; ") if part.startswith("sed -i"))
    sed = sed.replace("/etc/kubernetes/manifests/etcd.yaml", str(manifest))
    subprocess.run(["sh", "-c", sed], check=True)
    command = yaml.safe_load(manifest.read_text())["spec"]["containers"][0]["command"]
    assert command == ["etcd", "--force-new-cluster", "--data-dir=/var/lib/etcd"]
