"""The --pk key's passphrase from SEALOS_PK_PASSWORD (scripts have no terminal for
`--pk-passwd -`), and a warning when the key file is readable by its group or others."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from sealos import cli as cli_mod
from sealos import spec as spec_mod
from sealos.errors import SpecError
from sealos.ssh import key_file_warning, load_client_keys

PASSPHRASE = "correct horse battery"


@pytest.fixture
def encrypted_key(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-f", str(key)], check=True
    )
    return key


def test_the_passphrase_comes_from_sealos_pk_password(encrypted_key, monkeypatch):
    monkeypatch.setenv("SEALOS_PK_PASSWORD", PASSPHRASE)
    creds = spec_mod.credentials_from("root", None, str(encrypted_key), None, prompt=None)
    assert creds.key_passphrase == PASSPHRASE
    assert PASSPHRASE in creds.secrets()  # masked in the log like the password
    keys = load_client_keys(creds)
    assert keys is not None and len(keys) == 1
    # a flag still wins over the environment
    flagged = spec_mod.credentials_from("root", None, str(encrypted_key), "typed", prompt=None)
    assert flagged.key_passphrase == "typed"


def test_without_it_an_encrypted_key_names_both_ways(encrypted_key, monkeypatch):
    monkeypatch.delenv("SEALOS_PK_PASSWORD", raising=False)
    creds = spec_mod.credentials_from("root", None, str(encrypted_key), None, prompt=None)
    with pytest.raises(SpecError, match="SEALOS_PK_PASSWORD"):
        load_client_keys(creds)


def test_a_key_readable_by_others_is_warned_about(tmp_path, encrypted_key, monkeypatch):
    encrypted_key.chmod(0o600)
    assert key_file_warning(encrypted_key) is None
    encrypted_key.chmod(0o644)
    warning = key_file_warning(encrypted_key)
    assert (
        warning is not None and "mode 0644" in warning and f"chmod 600 {encrypted_key}" in warning
    )
    # and a run shows it (the run then fails on the closed port: nothing listens on port 1)
    pkg = tmp_path / "kube1.20.15.tar.gz"
    with tarfile.open(pkg, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("kube/bin/kubeadm"))
    monkeypatch.setenv("SEALOS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SEALOS_PK_PASSWORD", PASSPHRASE)
    args = ["init", "--master", "127.0.0.1:1", "--version", "v1.20.15", "--pkg", str(pkg)]
    out = CliRunner().invoke(cli_mod.cli, [*args, "--pk", str(encrypted_key)])
    assert "can be read by others (mode 0644)" in out.output, out.output
    assert PASSPHRASE not in out.output
