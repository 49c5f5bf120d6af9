"""Host preconditions per Kubernetes version (sealos.preconditions), the facts they read, and what
sealos renders from them (criSocket, the kubelet's cgroup driver)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from sealos import facts, kubeadm, preconditions
from sealos.facts import HostFacts
from sealos.kubeadm import ClusterSettings, JoinInfo
from sealos.kubeversion import KubeVersion

V = KubeVersion.parse
CONTAINERD = "/run/containerd/containerd.sock"
DOCKER = "/var/run/docker.sock"
CRIO = "/var/run/crio/crio.sock"


def host(**kw) -> HostFacts:
    """A host that meets every version's preconditions, changed by `kw`."""
    f = HostFacts(
        tools={"ip", "iptables", "mount", "nsenter", "conntrack", "crictl"},
        cri_sockets={CONTAINERD: True},
        runtime_cgroup={"containerd": "cgroupfs"},
        swap_devices=0,
        ip_forward="1",
        bridge_nf="1",
        cpus=2,
        memory_kb=2 * 1024 * 1024,
        cgroup_fs="tmpfs",
    )
    for k, v in kw.items():
        setattr(f, k, v)
    return f


@pytest.mark.parametrize("version", ["v1.14.1", "v1.20.15", "v1.24.17", "v1.29.0", "v1.31.4"])
def test_a_host_that_meets_them_has_no_problem(version):
    v = V(version)
    assert preconditions.before_change("m1", v, "master", host(), False, None) == []
    assert preconditions.after_prepare("m1", v, host()) == []


@pytest.mark.parametrize(
    ("version", "refused"), [("v1.20.15", True), ("v1.24.17", True), ("v1.25.0", False)]
)
def test_kubelets_before_1_25_are_refused_on_cgroup_v2(version, refused):
    problems = preconditions.before_change(
        "m1", V(version), "node", host(cgroup_fs="cgroup2fs"), False, None
    )
    assert bool(problems) == refused
    if refused:
        assert problems[0].startswith(f"m1: the kubelet of Kubernetes {version} cannot run on ")
        assert "systemd.unified_cgroup_hierarchy=0" in problems[0]


def test_control_plane_hosts_need_two_cpus_and_1700_mb_from_1_20_nodes_do_not():
    small = host(cpus=1, memory_kb=1000 * 1024)
    problems = preconditions.before_change("m1", V("v1.20.15"), "master", small, False, None)
    assert problems == [
        "m1: kubeadm needs 2 CPUs on a control-plane host and this one has 1; give it more "
        "CPUs, or add it as a --node.",
        "m1: kubeadm needs 1700 MB of memory on a control-plane host and this one has 1000 MB; "
        "give it more memory, or add it as a --node.",
    ]
    # The memory check came in 1.20; nodes are never checked.
    assert len(preconditions.before_change("m1", V("v1.19.16"), "master", small, False, None)) == 1
    assert preconditions.before_change("n1", V("v1.20.15"), "node", small, False, None) == []


@pytest.mark.parametrize(("version", "wanted"), [("v1.17.17", False), ("v1.18.0", True)])
def test_conntrack_is_required_from_1_18(version, wanted):
    f = host(tools={"ip", "iptables", "mount", "nsenter"})
    problems = preconditions.before_change("n1", V(version), "node", f, False, None)
    assert ("conntrack" in " ".join(problems)) == wanted


def test_missing_tools_are_named_in_one_sentence_with_their_packages():
    f = host(tools={"ip", "mount"})
    [problem] = preconditions.before_change("n1", V("v1.28.15"), "node", f, False, None)
    assert problem == (
        "n1: iptables, nsenter, conntrack not found, which kubeadm v1.28.15 requires; install "
        "them (Debian/Ubuntu: apt-get install iptables util-linux conntrack)."
    )


def test_a_runtime_is_required_before_any_change_only_when_the_package_brings_none():
    bare = host(cri_sockets={})
    v = V("v1.28.15")
    [problem] = preconditions.before_change("n1", v, "node", bare, False, None)
    assert problem.startswith("n1: no container runtime answers (looked for ")
    assert preconditions.before_change("n1", v, "node", bare, True, None) == []
    assert preconditions.before_change("n1", v, "node", bare, None, None) == []


def test_runtime_detection_follows_kubeadm_per_version():
    # Until 1.23 docker means dockershim, with the socket as a path.
    docker = host(cri_sockets={DOCKER: True})
    choice = preconditions.choose_runtime("n1", V("v1.20.15"), docker, None)
    assert (choice.socket, choice.problem) == ("/var/run/dockershim.sock", "")
    # From 1.24 docker alone is no CRI runtime.
    choice = preconditions.choose_runtime("n1", V("v1.24.17"), docker, None)
    assert choice.socket is None
    assert "needs cri-dockerd in front of it" in choice.problem
    # containerd: a path until 1.23, a unix:// URL from 1.24.
    ok = host()
    assert preconditions.choose_runtime("n1", V("v1.20.15"), ok, None).socket == CONTAINERD
    assert (
        preconditions.choose_runtime("n1", V("v1.24.17"), ok, None).socket
        == "unix:///run/containerd/containerd.sock"
    )


def test_several_runtimes_or_a_dead_socket_ask_for_cri_socket():
    both = host(cri_sockets={CONTAINERD: True, CRIO: True})
    choice = preconditions.choose_runtime("n1", V("v1.28.15"), both, None)
    assert choice.socket is None
    assert choice.problem == (
        "n1: several container runtimes answer (containerd (/run/containerd/containerd.sock), "
        "cri-o (/var/run/crio/crio.sock)); choose one with --cri-socket."
    )
    # Named explicitly, either answers (/var/run and /run are the same place).
    wanted = "unix:///var/run/crio/crio.sock"
    assert preconditions.choose_runtime("n1", V("v1.28.15"), both, wanted).socket == (
        "unix:///var/run/crio/crio.sock"
    )
    # A socket file nobody listens on does not count.
    stale = host(cri_sockets={CONTAINERD: False})
    choice = preconditions.choose_runtime("n1", V("v1.28.15"), stale, None)
    assert choice.problem.startswith("n1: no container runtime answers")
    choice = preconditions.choose_runtime("n1", V("v1.28.15"), stale, CONTAINERD)
    assert choice.problem == (
        "n1: nothing answers on the CRI socket /run/containerd/containerd.sock; start the "
        "container runtime there, or name the one it runs with --cri-socket."
    )


@pytest.mark.parametrize(
    ("version", "swap", "bridge", "crictl"),
    [
        ("v1.23.17", True, True, False),
        ("v1.24.17", True, True, True),
        ("v1.29.0", True, True, True),
        ("v1.30.0", True, False, True),
        ("v1.31.4", True, False, False),
    ],
)
def test_after_init_sh_swap_sysctls_and_crictl_per_version(version, swap, bridge, crictl):
    bad = host(swap_devices=1, ip_forward="0", bridge_nf=None, tools={"ip"})
    text = " ".join(preconditions.after_prepare("h", V(version), bad))
    assert ("swap is still on" in text) == swap
    assert "net.ipv4.ip_forward is 0" in text
    assert ("bridge-nf-call-iptables is missing (br_netfilter not loaded)" in text) == bridge
    assert ("crictl not found" in text) == crictl


def test_a_host_whose_runtime_uses_another_cgroup_driver_is_named():
    problems = preconditions.driver_problems(
        {"m1": "systemd", "n1": "cgroupfs", "n2": None}, "systemd", "as the runtime on m1"
    )
    assert problems == [
        "n1: its container runtime uses the cgroupfs cgroup driver but the cluster's kubelets "
        "use systemd (as the runtime on m1); configure the runtime for systemd (containerd: "
        "SystemdCgroup in /etc/containerd/config.toml) and restart it."
    ]
    assert preconditions.cgroup_driver(host(), preconditions.CONTAINERD) == "cgroupfs"


def test_the_fact_script_reads_this_machine_and_parses():
    out = subprocess.run(
        ["sh", "-c", facts.runtime_script()], capture_output=True, text=True, check=True
    ).stdout
    f = facts.parse(out)
    assert f.cpus >= 1
    assert f.memory_kb > 0
    assert f.cgroup_fs in ("tmpfs", "cgroup2fs")
    assert f.ip_forward in ("0", "1")
    assert "sh" not in f.tools  # only the listed tools are probed
    assert "mount" in f.tools


def test_facts_parse_sockets_and_drivers():
    f = facts.parse(
        "cri_socket=/run/containerd/containerd.sock=1\n"
        "cri_socket=/var/run/docker.sock=0\n"
        "containerd_cgroup=            SystemdCgroup = true\n"
        "docker_cgroup=cgroupfs\n"
        "swap_devices=2\nbridge_nf=1\ncpus=4\nmemory_kb=2048000\ncgroup_fs=cgroup2fs\n"
    )
    assert f.cri_sockets == {CONTAINERD: True, DOCKER: False}
    assert f.runtime_cgroup == {"containerd": "systemd", "docker": "cgroupfs"}
    assert (f.swap_devices, f.bridge_nf, f.cpus, f.memory_kb, f.cgroup_fs) == (
        2,
        "1",
        4,
        2048000,
        "cgroup2fs",
    )


def _settings(version: str, **kw) -> ClusterSettings:
    return ClusterSettings(
        version=V(version),
        apiserver="apiserver.cluster.local",
        vip="10.103.97.2",
        masters=["10.0.0.2"],
        pod_cidr="100.64.0.0/10",
        svc_cidr="10.96.0.0/12",
        **kw,
    )


def test_rendered_configs_carry_the_runtime_socket_and_cgroup_driver():
    s = _settings("v1.28.15", cri_socket="unix:///var/run/crio/crio.sock", cgroup_driver="cgroupfs")
    init, _cluster, _proxy, kubelet = kubeadm.init_documents(s, "10.0.0.2")
    assert init["nodeRegistration"]["criSocket"] == "unix:///var/run/crio/crio.sock"
    assert kubelet == {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
    }
    info = JoinInfo(
        "apiserver.cluster.local:6443", "abcdef.0123456789abcdef", ["sha256:" + "a" * 64]
    )
    for address in (None, "10.0.0.3"):
        doc = kubeadm.join_document(
            V("v1.28.15"), info, info.endpoint, address, cri_socket=CONTAINERD
        )
        assert doc["nodeRegistration"]["criSocket"] == CONTAINERD
    command = kubeadm.join_command_1_14_control_plane(
        V("v1.14.1"), info.endpoint, info.ca_cert_hashes, "10.0.0.3", CONTAINERD
    )
    assert command.endswith(f"--cri-socket {CONTAINERD}")
    # Without a known driver nothing is added (kubeadm's default stays).
    assert len(kubeadm.init_documents(_settings("v1.28.15"), "10.0.0.2")) == 3


def test_a_users_kubeadm_config_gets_a_kubelet_document_only_when_it_has_none(tmp_path):
    given = b"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"
    config, note = kubeadm.with_kubelet_document(given, "cgroupfs")
    assert note == " + KubeletConfiguration cgroupDriver: cgroupfs"
    docs = list(yaml.safe_load_all(config))
    assert [d["kind"] for d in docs] == ["ClusterConfiguration", "KubeletConfiguration"]
    own = given + b"---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
    assert kubeadm.with_kubelet_document(own, "cgroupfs") == (own, "")
    path = tmp_path / "k.yaml"
    path.write_bytes(
        b"apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nnodeRegistration:\n"
        b"  criSocket: unix:///var/run/crio/crio.sock\n---\n"
        b"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        b"cgroupDriver: systemd\n"
    )
    assert kubeadm.config_cri_socket(path) == "unix:///var/run/crio/crio.sock"
    assert kubeadm.config_cgroup_driver(path) == "systemd"


def test_cri_socket_flag_must_be_a_socket_path_and_agree_with_the_kubeadm_config(tmp_path):
    from sealos import spec as spec_mod
    from sealos.addresses import parse_hosts
    from sealos.validate import spec_problems

    pkg = tmp_path / "kube1.28.15.tar.gz"
    pkg.write_bytes(b"x")

    def problems(socket, config=None):
        spec = spec_mod.ClusterSpec(
            masters=parse_hosts(["10.0.0.2"]),
            version=V("v1.28.15"),
            pkg=pkg,
            cri_socket=socket,
            kubeadm_config=config,
        )
        return spec_problems(spec)

    assert problems("unix:///run/containerd/containerd.sock") == []
    assert problems("/run/containerd/containerd.sock") == []
    assert problems("tcp://10.0.0.1:2375") == [
        "--cri-socket 'tcp://10.0.0.1:2375' is not a unix socket path or unix:// URL; give e.g. "
        "unix:///run/containerd/containerd.sock."
    ]
    config = tmp_path / "k.yaml"
    config.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nnodeRegistration:\n"
        "  criSocket: unix:///var/run/crio/crio.sock\n"
    )
    assert problems("unix:///run/containerd/containerd.sock", config) == [
        f"--cri-socket unix:///run/containerd/containerd.sock differs from the criSocket "
        f"unix:///var/run/crio/crio.sock of {config}; give one of them."
    ]


@pytest.mark.parametrize("dry_run", [False, True])
def test_after_init_sh_checks_wait_for_init_sh_in_a_dry_run(tmp_path, dry_run):
    """A dry run does not run init.sh, so what it would still set (ip_forward here) is no
    problem there; on a host init.sh already prepared, and in a real run, it is."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_sealos_phases import SHA, make_ctx

    from sealos.validate import runtime_problems

    ctx = make_ctx(tmp_path, "v1.28.15", dry_run=dry_run)
    for n in ctx.nodes:
        n.prepared = host(ip_forward="0")
    problems = runtime_problems(ctx)
    assert len(problems) == (0 if dry_run else 5), problems
    ctx.nodes[0].facts.package_ready = SHA  # init.sh ran there for this package
    assert [p.split(":")[0] for p in runtime_problems(ctx)] == (
        ["10.0.0.2"] if dry_run else ["10.0.0.2"] + [f"10.0.0.{i}" for i in range(3, 7)]
    )


def test_the_kubeadm_configs_cri_socket_is_checked_before_any_change_too(tmp_path):
    """A criSocket named in --kubeadm-config is the one that must answer, before any change as
    after init.sh (a package without a runtime: the host's must be there already)."""
    from sealos import spec as spec_mod
    from sealos.addresses import parse_hosts
    from sealos.package import PackageInfo
    from sealos.validate import HostView, host_problems

    config = tmp_path / "k.yaml"
    config.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nnodeRegistration:\n"
        "  criSocket: unix:///var/run/crio/crio.sock\n"
    )
    pkg = tmp_path / "kube1.28.15.tar.gz"
    pkg.write_bytes(b"x")
    spec = spec_mod.ClusterSpec(
        masters=parse_hosts(["10.0.0.2"]), version=V("v1.28.15"), pkg=pkg, kubeadm_config=config
    )
    f = host(uid=0, addresses=["10.0.0.2"], disk_free=1 << 40, python3=(3, 11, 2))
    f.tools |= {"tar", "gzip", "sha256sum", "systemctl"}
    view = HostView(spec.masters[0], "master", "10.0.0.2", f)
    package = PackageInfo("p", 1000, "0" * 64, None, brings_runtime=False)
    assert host_problems(spec, [view], package) == [
        "10.0.0.2: nothing answers on the CRI socket /var/run/crio/crio.sock; start the "
        "container runtime there, or name the one it runs with --cri-socket."
    ]
