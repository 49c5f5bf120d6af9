"""The cluster spec from flags, cluster.yaml and the environment; the command line around it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sealos import spec as spec_mod
from sealos.addresses import HostAddress
from sealos.cli import cli
from sealos.errors import SpecError


def test_print_config_round_trips_through_file(tmp_path: Path):
    runner = CliRunner()
    args = [
        "init",
        "--print-config",
        "--master",
        "10.0.0.2-10.0.0.4",
        "--node",
        "10.0.0.5:2222",
        "--version",
        "v1.20.15",
        "--pkg",
        "kube1.20.15.tar.gz",
        "--cert-sans",
        "k8s.example.com",
        "--without-cni",
        "--passwd",
        "s3cret!",
    ]
    out = runner.invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert "s3cret" not in out.output
    data = yaml.safe_load(out.output)
    assert data["masters"] == ["10.0.0.2-10.0.0.4"] and data["nodes"] == ["10.0.0.5:2222"]
    assert data["withoutCNI"] is True and data["certSANs"] == ["k8s.example.com"]
    assert data["vip"] == spec_mod.DEFAULT_VIP

    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(out.output)
    again = runner.invoke(
        cli, ["init", "--print-config", "-f", str(cluster), "--vip", "10.200.0.9"]
    )
    assert again.exit_code == 0, again.output
    data2 = yaml.safe_load(again.output)
    assert data2["vip"] == "10.200.0.9"  # the typed flag wins over the file
    assert data2["masters"] == data["masters"] and data2["version"] == "v1.20.15"


def test_file_values_build_a_typed_spec(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text(
        "masters: [10.0.0.2]\nnodes: ['10.0.0.5-10.0.0.6']\nport: 2200\nversion: 1.28.15\n"
        "pkg: /tmp/kube.tar.gz\nlvscareMode: static-pod\n"
    )
    spec = spec_mod.build(spec_mod.merge(spec_mod.load_file(f), {}), spec_mod.Credentials())
    assert spec.masters == [HostAddress("10.0.0.2", 2200)]
    assert [str(n) for n in spec.nodes] == ["10.0.0.5:2200", "10.0.0.6:2200"]
    assert str(spec.version) == "v1.28.15" and spec.lvscare_mode == "static-pod"
    assert spec.package_name == "kube.tar.gz"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("masters: [10.0.0.2]\npasswd: hunter2\n", "never read from files"),
        ("masters: [10.0.0.2]\nmastrs: []\n", "unknown setting 'mastrs'"),
        ("masters: [10.0.0.2\n", "not valid YAML"),
        ("- 10.0.0.2\n", "must be a mapping"),
    ],
)
def test_bad_files_are_refused_in_one_sentence(tmp_path: Path, content, words):
    f = tmp_path / "c.yaml"
    f.write_text(content)
    with pytest.raises(SpecError) as e:
        spec_mod.load_file(f)
    assert words in str(e.value)


def test_password_sources(monkeypatch):
    monkeypatch.setenv("SEALOS_PASSWORD", "from env '\"$;\\ x")
    assert spec_mod.credentials_from("root", None, None, None).password == "from env '\"$;\\ x"
    assert spec_mod.credentials_from("root", "flag", None, None).password == "flag"
    asked = spec_mod.credentials_from("root", "-", None, None, prompt=lambda label: "typed")
    assert asked.password == "typed"
    monkeypatch.delenv("SEALOS_PASSWORD")
    assert spec_mod.credentials_from("root", None, None, None).password is None
    with pytest.raises(SpecError):
        spec_mod.credentials_from("root", "-", None, None, prompt=None)


def test_credentials_never_show_secrets_in_repr():
    c = spec_mod.Credentials(password="pw-123456", key_passphrase="kp-123456")
    assert "pw-123456" not in repr(c) and "kp-123456" not in repr(c)
    assert set(c.secrets()) == {"pw-123456", "kp-123456"}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--master", "10.0.0.300"], "neither an IP"),
        (["--master", "10.0.0.2", "--version", "1.13.5"], "older than v1.14.0"),
        (["--master", "10.0.0.2", "--version", "latest"], "not a release"),
        (["--master", "10.0.0.2", "--concurrency", "0"], "--concurrency"),
    ],
)
def test_cli_bad_input_is_one_sentence_without_traceback(args, words):
    out = CliRunner().invoke(cli, ["init", *args, "--pkg", "x.tar.gz"])
    assert out.exit_code == 2
    assert words in out.output and "Traceback" not in out.output


def test_encrypted_key_needs_its_passphrase(tmp_path: Path):
    import asyncssh

    from sealos.ssh import load_client_keys

    key = asyncssh.generate_private_key("ssh-ed25519")
    path = tmp_path / "id_ed25519"
    key.write_private_key(str(path), passphrase="pass phrase $'\"")
    ok = load_client_keys(spec_mod.Credentials(key_path=path, key_passphrase="pass phrase $'\""))
    assert ok is not None and ok[0].get_fingerprint() == key.get_fingerprint()
    with pytest.raises(SpecError) as e:
        load_client_keys(spec_mod.Credentials(key_path=path))
    assert "--pk-passwd" in str(e.value)
    with pytest.raises(SpecError) as e:
        load_client_keys(spec_mod.Credentials(key_path=path, key_passphrase="wrong"))
    assert "check --pk and --pk-passwd" in str(e.value)


@pytest.mark.parametrize("extra", [[], ["--print-config"]])
def test_cli_file_that_is_not_yaml_is_one_sentence(tmp_path: Path, extra):
    bad = tmp_path / "cluster.yaml"
    bad.write_text("masters: [10.0.0.2\n")
    out = CliRunner().invoke(cli, ["init", "-f", str(bad), *extra])
    assert out.exit_code == 2
    assert out.exception is None or isinstance(out.exception, SystemExit)
    assert "is not valid YAML" in out.output and "Traceback" not in out.output
    assert len(out.output.strip().splitlines()) == 1
