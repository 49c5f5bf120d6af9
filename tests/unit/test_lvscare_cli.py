"""lvscare's command line: bad input ends in one sentence and a non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lvscare import cli
from lvscare.model import UserError

GOOD = ["care", "--vs", "10.103.97.2:6443", "--rs", "192.168.0.2:6443"]


def run_main(argv, capsys) -> tuple[int, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own exits
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (
            ["care", "--vs", "10.103.97.2", "--rs", "192.168.0.2:6443"],
            "--vs 10.103.97.2 has no port",
        ),
        (["care", "--vs", "10.103.97.2:6443"], "no --rs given"),
        (["care", "--rs", "192.168.0.2:6443"], "--vs is missing"),
        ([*GOOD, "--health-schem", "ftp"], "--health-schem ftp is not known"),
        (["care", "--vs", "10.103.97.2:6443", "--rs", "[fd00::2]:6443"], "use one address family"),
        ([*GOOD, "--interval", "soon"], "--interval soon is not a duration"),
        ([*GOOD, "--health-timeout", "0s"], "--health-timeout 0s is not a duration"),
        ([*GOOD, "--fall", "0"], "--fall 0 must be a whole number"),
        ([*GOOD, "--backend", "lvs"], "--backend lvs is not known"),
        ([*GOOD, "--mode", "bgp"], "--mode bgp is not known"),
        ([*GOOD, "--backend", "nft", "--scheduler", "wlc"], "the nftables backend does rr only"),
        ([*GOOD, "--health-path", "healthz"], "must start with /"),
        ([*GOOD, "--health-path", "/a b"], "must start with /"),
        ([*GOOD, "--node-ip", "fd00::9"], "--node-ip fd00::9 is IPv6"),
        ([*GOOD, "--node-ip", "node1"], "--node-ip node1 is not an IP address"),
        ([*GOOD, "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(argv, words, capsys):
    code, err = run_main(argv, capsys)
    assert code == 2
    assert words in err
    assert err.startswith("lvscare: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_no_permission_is_one_sentence(monkeypatch, capsys):
    monkeypatch.setattr(cli, "has_net_admin", lambda: False)
    code, err = run_main([*GOOD, "--run-once"], capsys)
    assert code == 1
    assert err == (
        "lvscare: changing the kernel's load-balancing rules needs root (CAP_NET_ADMIN): "
        "run lvscare as root.\n"
    )


def test_no_ipvs_with_backend_ipvs_is_one_sentence(monkeypatch, capsys):
    from lvscare.backends import ipvs

    monkeypatch.setattr(cli, "has_net_admin", lambda: True)
    monkeypatch.setattr(ipvs, "_open", lambda: None)
    monkeypatch.setattr(ipvs, "_load_module", lambda: None)
    code, err = run_main([*GOOD, "--backend", "ipvs"], capsys)
    assert code == 1
    assert "this kernel has no IPVS" in err and "use --backend nft" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_defaults():
    config = cli.parse_care(cli.build_parser().parse_args(GOOD))
    # No path: /readyz, or /healthz where a server has no /readyz (probe.py decides per server).
    assert config.probe.scheme == "https" and config.probe.path is None
    assert config.probe.statuses == ((200, 399),)
    assert (config.interval, config.probe.timeout) == (0.5, 1.0)
    assert (config.policy.fall, config.policy.rise) == (2, 1)
    assert (config.backend, config.mode, config.vs.scheduler) == ("auto", "route", "rr")


def test_clean_needs_no_real_servers():
    args = cli.build_parser().parse_args(["care", "--vs", "10.103.97.2:6443", "--clean"])
    assert cli.parse_care(args).clean


def test_duplicate_real_servers_count_once():
    args = cli.build_parser().parse_args([*GOOD, "--rs", "192.168.0.2:6443"])
    assert len(cli.parse_care(args).real_servers) == 1


@pytest.mark.parametrize(
    ("text", "seconds"), [("1s", 1.0), ("500ms", 0.5), ("1.5", 1.5), ("2m", 120.0)]
)
def test_durations(text, seconds):
    assert cli.parse_duration(text, "--interval") == seconds


def test_duration_errors_name_the_flag():
    with pytest.raises(UserError, match=r"^--interval 1h is not a duration"):
        cli.parse_duration("1h", "--interval")


def test_module_entry_point_prints_version():
    proc = subprocess.run(
        [sys.executable, "-m", "lvscare", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("lvscare ")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["care", "--vs", "[fe80::1%eth0]:6443", "--rs", "[fd00::2]:6443"], "scoped IPv6"),
        (["care", "--vs", "[fd00::1]:6443", "--rs", "[fe80::2%eth0]:6443"], "scoped IPv6"),
        (["care", "--vs", "0.0.0.0:6443", "--rs", "192.168.0.2:6443"], "unspecified address"),
        (["care", "--vs", "[::]:6443", "--rs", "[fd00::2]:6443"], "unspecified address"),
        (["care", "--vs", "255.255.255.255:6443", "--rs", "192.168.0.2:6443"], "broadcast"),
        (["care", "--vs", "224.0.0.1:6443", "--rs", "192.168.0.2:6443"], "multicast"),
        (["care", "--vs", "[ff02::1]:6443", "--rs", "[fd00::2]:6443"], "multicast"),
        (["care", "--vs", "10.103.97.2:6443", "--rs", "0.0.0.0:6443"], "unspecified address"),
        (["care", "--vs", "10.103.97.2:6443", "--rs", "10.103.97.2:6444"], "the VIP's address"),
        ([*GOOD, "--interval", "0.0000001"], "--interval 0.0000001 is too short"),
        ([*GOOD, "--interval", "1ms"], "--interval 1ms is too short"),
        ([*GOOD, "--interval", "1e-7"], "--interval 1e-7 is not a duration"),
    ],
)
def test_hostile_addresses_and_busy_interval_are_one_sentence(argv, words):
    # parse_care only: on code that accepts these, main() would start caring for real.
    with pytest.raises(UserError) as refused:
        cli.parse_care(cli.build_parser().parse_args(argv))
    message = str(refused.value)
    assert words in message
    assert "\n" not in message and message.endswith(".")


def test_shortest_interval_is_accepted():
    args = cli.build_parser().parse_args([*GOOD, "--interval", "100ms"])
    assert cli.parse_care(args).interval == 0.1
