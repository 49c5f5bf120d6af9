"""--bastion [USER@]HOST[:PORT]: parsing, bad values (one sentence each), the file and state
forms, and the jump host's credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sealos import members
from sealos import spec as spec_mod
from sealos.addresses import Bastion, HostAddress, parse_bastion
from sealos.cli import cli
from sealos.errors import SpecError


@pytest.mark.parametrize(
    ("text", "address", "user", "shown"),
    [
        ("10.0.0.1", HostAddress("10.0.0.1", 22), None, "10.0.0.1"),
        ("ops@10.0.0.1:2222", HostAddress("10.0.0.1", 2222), "ops", "ops@10.0.0.1:2222"),
        ("Jump.Example.com", HostAddress("jump.example.com", 22), None, "jump.example.com"),
        ("a_d-m.in@[fd00::1]:22", HostAddress("fd00::1", 22), "a_d-m.in", "a_d-m.in@fd00::1"),
        (" root@gw:2200 ", HostAddress("gw", 2200), "root", "root@gw:2200"),
    ],
)
def test_bastion_forms(text, address, user, shown):
    bastion = parse_bastion(text)
    assert bastion == Bastion(address, user)
    assert str(bastion) == shown
    assert parse_bastion(str(bastion)) == bastion  # the recorded form reads back the same


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "--bastion is empty"),
        ("a@b@10.0.0.1", "more than one '@'"),
        ("bad user@10.0.0.1", "is not a user name"),
        ("@10.0.0.1", "'' is not a user name"),
        ("ops@", "neither an IP address"),
        ("10.0.0.1-5", "is a range"),
        ("10.0.0.1,10.0.0.2", "names several hosts"),
        ("10.0.0.1:99999", "give a number from 1 to 65535"),
        ("fe80::1%eth0", "scoped IPv6"),
        ("under_score.example", "neither an IP address"),
    ],
)
def test_bad_bastions_are_one_sentence(text, words):
    with pytest.raises(SpecError) as e:
        parse_bastion(text)
    message = str(e.value)
    assert words in message, message
    assert message.endswith(".") and "\n" not in message


def test_cli_refuses_a_bad_bastion_without_traceback():
    out = CliRunner().invoke(
        cli, ["init", "--master", "10.0.0.2", "--pkg", "x.tar.gz", "--bastion", "x@y@z"]
    )
    assert out.exit_code == 2, out.output
    assert "error: --bastion 'x@y@z' holds more than one '@'" in out.output
    assert "Traceback" not in out.output


def test_bastion_in_print_config_file_and_spec(tmp_path: Path):
    runner = CliRunner()
    printed = runner.invoke(
        cli,
        ["init", "--master", "10.0.0.2", "--pkg", "k.tar.gz", "--bastion", "ops@10.0.0.1:2222",
         "--print-config"],
    )  # fmt: skip
    assert printed.exit_code == 0, printed.output
    assert yaml.safe_load(printed.output.split("\n", 3)[3])["bastion"] == "ops@10.0.0.1:2222"
    f = tmp_path / "cluster.yaml"
    f.write_text(printed.output)
    values = spec_mod.merge(spec_mod.load_file(f), {})
    spec = spec_mod.build(values, spec_mod.Credentials())
    assert spec.bastion == Bastion(HostAddress("10.0.0.1", 2222), "ops")
    assert spec_mod.to_values(spec)["bastion"] == "ops@10.0.0.1:2222"
    assert spec_mod.build(spec_mod.merge({}, {}), spec_mod.Credentials()).bastion is None


def test_join_and_clean_take_the_recorded_bastion_unless_typed():
    from sealos.state import ClusterState

    state = ClusterState(settings={"masters": ["10.0.0.2"], "bastion": "10.0.0.1"})
    assert members.settings_with(state, {})["bastion"] == "10.0.0.1"
    assert members.settings_with(state, {"bastion": "gw:2200"})["bastion"] == "gw:2200"


def test_bastion_credentials(monkeypatch):
    monkeypatch.delenv(spec_mod.BASTION_PASSWORD_ENV, raising=False)
    creds = spec_mod.credentials_from("admin", "target-pw", "/k", None)
    same = creds.for_bastion(parse_bastion("10.0.0.1"))
    assert (same.user, same.password, same.key_path) == ("admin", "target-pw", Path("/k"))
    assert creds.for_bastion(parse_bastion("ops@10.0.0.1")).user == "ops"

    monkeypatch.setenv(spec_mod.BASTION_PASSWORD_ENV, "jump-pw-1")
    creds = spec_mod.credentials_from("root", "target-pw", None, None)
    own = creds.for_bastion(parse_bastion("ops@10.0.0.1"))
    assert (own.user, own.password) == ("ops", "jump-pw-1")
    assert "jump-pw-1" in creds.secrets()  # masked in the log
    assert "jump-pw-1" not in repr(creds)
