"""Validation rules: every problem one sentence naming the host and the fix, all listed at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealos import spec as spec_mod
from sealos.addresses import HostAddress, parse_hosts
from sealos.etc_hosts import entry
from sealos.facts import HostFacts
from sealos.kubeversion import KubeVersion
from sealos.package import PackageInfo
from sealos.preconditions import REQUIRED_TOOLS
from sealos.validate import HostView, host_problems, spec_problems, warnings

# The tools kubeadm's preflight wants on every host.
KUBEADM_TOOLS = {*REQUIRED_TOOLS, "conntrack"}


def make_spec(tmp_path: Path, **kw) -> spec_mod.ClusterSpec:
    pkg = tmp_path / "kube1.20.15.tar.gz"
    pkg.write_bytes(b"x")
    base = dict(
        masters=parse_hosts(["10.0.0.2-10.0.0.4"]),
        nodes=parse_hosts(["10.0.0.5"]),
        version=KubeVersion.parse("v1.20.15"),
        pkg=pkg,
    )
    base.update(kw)
    return spec_mod.ClusterSpec(**base)


def good_facts(i: int, **kw) -> HostFacts:
    f = HostFacts(
        hostname=f"host{i}",
        arch="x86_64",
        uid=0,
        python3=(3, 11, 2),
        disk_free=50 * 1024**3,
        addresses=["127.0.0.1", f"10.0.0.{i}"],
        tools={"tar", "gzip", "sha256sum", "systemctl", "curl", *KUBEADM_TOOLS},
    )
    for k, v in kw.items():
        setattr(f, k, v)
    return f


def views(spec, **per_host) -> list[HostView]:
    out = []
    for h in spec.all_hosts:
        i = int(h.host.rsplit(".", 1)[1])
        role = "master" if h in spec.masters else "node"
        out.append(HostView(h, role, h.host, good_facts(i, **per_host.get(h.host, {}))))
    return out


def test_a_good_spec_and_hosts_have_no_problems(tmp_path):
    spec = make_spec(tmp_path)
    assert spec_problems(spec) == []
    assert host_problems(spec, views(spec), PackageInfo("p", 1000, "0" * 64, "amd64")) == []


def test_default_vip_is_outside_default_ranges(tmp_path):
    # The defaults must pass their own rule "VIP not inside the pod/service CIDRs".
    assert spec_problems(make_spec(tmp_path)) == []


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"masters": []}, "no master given"),
        ({"version": None}, "add --version"),
        ({"pkg": None}, "add --pkg FILE or --pkg-url"),
        ({"pkg_url": "http://10.0.0.1/k.tar.gz"}, "use one of them"),
        ({"pkg": Path("/nonexistent/kube.tar.gz")}, "does not exist; check --pkg"),
        ({"vip": "10.0.0.3"}, "is the address of host 10.0.0.3"),
        ({"vip": "100.64.1.1"}, "inside --podcidr"),
        ({"vip": "10.96.0.7"}, "inside --svccidr"),
        ({"vip": "nope"}, "not an IP address"),
        ({"svc_cidr": "100.64.0.0/16"}, "overlaps"),
        ({"pod_cidr": "10.0.0.1/8"}, "CIDR form"),
        ({"nodes": parse_hosts(["10.0.0.4"])}, "both as --master and as --node"),
        ({"nodes": parse_hosts(["10.0.0.5", "10.0.0.5"])}, "more than once as --node"),
        ({"apiserver": "Bad_Name"}, "not a valid DNS name"),
        ({"kubeadm_config": Path("/nonexistent.yaml")}, "cannot be read"),
    ],
)
def test_spec_problems(tmp_path, kw, words):
    problems = spec_problems(make_spec(tmp_path, **kw))
    assert any(words in p for p in problems), problems


def test_all_host_problems_listed_at_once_each_naming_its_host(tmp_path):
    spec = make_spec(tmp_path)
    hosts = views(
        spec,
        **{
            "10.0.0.3": {"hostname": "host2"},  # duplicates 10.0.0.2's hostname
            "10.0.0.4": {"arch": "aarch64", "hosts_lines": ["1.2.3.4 apiserver.cluster.local"]},
            "10.0.0.5": {
                "python3": (3, 7, 3),
                "disk_free": 10 * 1024**2,
                "uid": 1000,
                "addresses": ["10.0.0.5", "10.103.97.2"],
            },
        },
    )
    problems = host_problems(spec, hosts, PackageInfo("p", 300 * 1024**2, "0" * 64, "amd64"))
    expected = [
        ("10.0.0.2 and 10.0.0.3 share the hostname 'host2'", "hostnamectl"),
        ("10.0.0.4: the package holds amd64 binaries but the host is arm64", "arm64 package"),
        (
            "10.0.0.4: /etc/hosts already maps apiserver.cluster.local to 1.2.3.4",
            "remove that line",
        ),
        ("10.0.0.5: lvscare needs python3 3.9", "3.7.3"),
        ("10.0.0.5: only 10 MiB free", "free some space"),
        ("10.0.0.5: commands run as uid", "--user root"),
        ("10.0.0.5: the VIP 10.103.97.2 is already an address", "choose a --vip"),
    ]
    for start, fix in expected:
        assert any(p.startswith(start) and fix in p for p in problems), (start, problems)
    assert len(problems) == len(expected)
    assert all(p.endswith(".") for p in problems)


def test_our_own_hosts_line_is_not_a_problem_and_python_only_matters_on_nodes(tmp_path):
    spec = make_spec(tmp_path)
    hosts = views(
        spec, **{"10.0.0.2": {"hosts_lines": [entry("10.0.0.2", spec.apiserver)], "python3": None}}
    )
    assert host_problems(spec, hosts) == []


def test_tools_needed_per_mode(tmp_path):
    spec = make_spec(tmp_path, pkg=None, pkg_url="http://10.0.0.1/kube1.20.15.tar.gz")
    hosts = views(spec, **{"10.0.0.5": {"tools": {"tar", "gzip", "sha256sum"}}})
    problems = host_problems(spec, hosts)
    assert any("10.0.0.5: neither curl nor wget" in p for p in problems)
    assert any("10.0.0.5: systemctl not found" in p and "static-pod" in p for p in problems)


def test_address_seen_from_operator_must_belong_to_host(tmp_path):
    spec = make_spec(tmp_path, nodes=[])
    hosts = views(spec)
    hosts[0].ip = "192.0.2.50"
    assert any("not one of its own addresses" in p for p in host_problems(spec, hosts))


def test_clock_skew_is_a_warning(tmp_path):
    spec = make_spec(tmp_path, nodes=[])
    hosts = views(spec, **{"10.0.0.3": {"time": 1000.0}})
    for h in hosts:
        if not h.facts.time:
            h.facts.time = 5000.0
    out = warnings(hosts, operator_time=5000.0)
    assert len(out) == 1 and out[0].startswith("10.0.0.3: its clock is 4000 s behind")


def test_hostaddress_key_for_ipv6():
    assert HostAddress("fd00::2", 22).key == "[fd00::2]:22"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://h/.ssh", "starts with a dot"),
        ("https://h/..", "starts with a dot"),
        ("https://h/kube/", "ends in `/`"),
        ("https://h/kube", "is the folder the package unpacks into"),
        ("https://h/kube1.20.15.zip", "does not end in .tar.gz or .tgz"),
        ("https://h/.tar.gz", "starts with a dot"),
        ("https://h/a%20b.tar.gz?x=1", None),
        ("https://h/pkgs/kube1.20.15.tgz?sig=abc", None),
    ],
)
def test_hostile_package_names_are_refused_in_one_sentence(tmp_path, url, words):
    spec = make_spec(tmp_path, pkg=None, pkg_url=url, pkg_sha256="0" * 64)
    problems = [p for p in spec_problems(spec) if "package name" in p or "names a folder" in p]
    if words is None:
        assert problems == []
    else:
        assert len(problems) == 1 and words in problems[0], problems
        assert problems[0].replace("e.g. ", "").count(". ") == 0 and problems[0].endswith(".")


def test_hostile_local_package_name_is_refused(tmp_path):
    pkg = tmp_path / "kube"
    pkg.write_bytes(b"x")
    problems = spec_problems(make_spec(tmp_path, pkg=pkg))
    assert any("is the folder the package unpacks into" in p for p in problems), problems


def test_clean_never_removes_a_hostile_package_name_by_name():
    from sealos import clean_script

    text = clean_script.script([], [".ssh", "kube", "", "kube1.20.15.tar.gz"])
    assert "/root/.ssh" not in text and "'/root/kube'" not in text
    assert "/root/kube1.20.15.tar.gz" in text


def test_scoped_ipv6_vip_is_refused_in_one_sentence(tmp_path):
    problems = spec_problems(make_spec(tmp_path, vip="fe80::1%eth0"))
    assert any("--vip 'fe80::1%eth0' is a scoped IPv6 address" in p for p in problems), problems
