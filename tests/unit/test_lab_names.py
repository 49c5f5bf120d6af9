"""Lab names, subnets and the CLI's argument handling: the parts of the lab that need no root."""

from __future__ import annotations

import ipaddress

import pytest

from sealos_lab import cli, credentials
from sealos_lab import state as lab


@pytest.mark.parametrize("name", ["default", "demo", "e2e-init", "a", "x1-2-3"])
def test_usable_lab_names(name):
    lab.check_name(name)


@pytest.mark.parametrize("name", ["", "Demo", "-a", "a-", "a_b", "a.b", "x" * 21, "a b"])
def test_unusable_lab_names_say_how_to_fix(name):
    with pytest.raises(lab.LabError, match="lowercase letters, digits or dashes"):
        lab.check_name(name)


def test_namespaces_of_one_lab_never_match_another_lab():
    # "a" and "a-b" share a prefix; down("a") must not take "a-b"'s namespaces.
    assert lab.owns_namespace("a", "sl-a-h1") and lab.owns_namespace("a", "sl-a-sw")
    assert not lab.owns_namespace("a", "sl-a-b-h1") and not lab.owns_namespace("a", "sl-a-b-sw")
    assert lab.owns_namespace("a-b", "sl-a-b-h12")


def test_subnets_are_distinct_and_avoid_the_range_other_tests_use(tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "STATE", tmp_path)
    monkeypatch.setattr(lab, "lab_dir", lambda name: tmp_path / name)
    seen = set()
    for i in range(60):
        name = f"lab{i}"
        subnet = lab._pick_subnet(name)
        net = ipaddress.ip_network(subnet)
        assert net.prefixlen == 24 and str(net).startswith("10.250.")
        assert not 99 <= net.network_address.packed[2] <= 130
        assert subnet not in seen
        seen.add(subnet)
        lab.Lab(name=name, subnet=subnet, kind="nspawn").save()
    assert lab._pick_subnet("lab0") not in seen  # taken by lab0 itself: a new one is chosen


def test_hostnames_are_checked():
    lab.check_hostname("node-1")
    with pytest.raises(lab.LabError, match="not a valid hostname"):
        lab.check_hostname("bad_name")


def test_command_after_double_dash():
    assert cli._command(["--", "sh", "-c", "x"]) == ["sh", "-c", "x"]
    assert cli._command(["hostname"]) == ["hostname"]
    with pytest.raises(lab.LabError, match="no command given"):
        cli._command(["--"])


def test_state_file_is_private_and_holds_no_password(tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "lab_dir", lambda name: tmp_path / name)
    one = lab.Lab(name="p", subnet="10.250.5.0/24", kind="nspawn")
    (tmp_path / "p").mkdir()
    # The secrets exist before the state is written, as in `up`: save() could store the password.
    credentials.ensure_secrets(one, "s3cret")
    assert one.password == "s3cret"
    one.save()
    state = tmp_path / "p" / lab.STATE_FILE
    assert state.stat().st_mode & 0o777 == 0o600
    assert "s3cret" not in state.read_text()
    assert (tmp_path / "p" / lab.PASSWORD_FILE).stat().st_mode & 0o777 == 0o600
    assert lab.Lab.load("p").password == "s3cret"
