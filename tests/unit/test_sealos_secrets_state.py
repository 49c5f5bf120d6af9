"""Secrets stay out of logs and the state file; the state file is 0600 and round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sealos import spec as spec_mod
from sealos.addresses import parse_hosts
from sealos.kubeversion import KubeVersion
from sealos.logfile import CommandLog, new_log_path
from sealos.redaction import MASK, Redactor
from sealos.state import ClusterState, Member, StateStore

TOKEN = "9vr73a.a8uxyaju799qwdjv"
KEY = "f8902e114ef118304e561c3ecd4d0b543adc226b7a07f675f56564185ffe0c07"
HASH = "sha256:7c2e69131a36ae2a042a339b33381c6d0d43887e2de83720eff5359e26aec866"
INIT_OUT = f"""You can now join any number of the control-plane node running the following command:

  kubeadm join apiserver.cluster.local:6443 --token {TOKEN} \\
    --discovery-token-ca-cert-hash {HASH} \\
    --experimental-control-plane --certificate-key {KEY}
[upload-certs] Using certificate key:
{KEY}
"""


def test_kubeadm_secrets_are_masked_even_when_not_registered():
    text = Redactor()(INIT_OUT)
    assert TOKEN not in text and KEY not in text
    # What is not secret stays readable.
    assert "apiserver.cluster.local:6443" in text and "sha256:7c2e6913" in text
    assert text.count(MASK) == 3


def test_registered_secrets_and_yaml_fields_are_masked():
    r = Redactor("pa ss'wo\"rd", "ab")  # short, yet a whole token: masked (issue 11)
    out = r(
        "login with pa ss'wo\"rd\ntoken: abcdef.0123456789abcdef\ncertificateKey: " + KEY + "\nab"
    )
    assert "pa ss'wo\"rd" not in out and KEY not in out and "abcdef.0123456789abcdef" not in out
    assert out.endswith(f"\n{MASK}")


def test_log_file_is_private_and_redacted(tmp_path: Path):
    path = new_log_path(tmp_path, "init")
    log = CommandLog(path, Redactor("s3cret-pw"))
    log.write("10.0.0.2", "stdout", f"echo s3cret-pw\n{INIT_OUT}")
    log.close()
    text = path.read_text()
    assert "s3cret-pw" not in text and TOKEN not in text and KEY not in text
    assert "[10.0.0.2] stdout: echo <redacted>" in text
    assert path.stat().st_mode & 0o777 == 0o600
    assert new_log_path(tmp_path, "init") != path


def test_state_is_0600_round_trips_and_holds_no_secret(tmp_path: Path):
    creds = spec_mod.Credentials(password="hunter2-pw", key_passphrase="kp-secret")
    spec = spec_mod.ClusterSpec(
        masters=parse_hosts(["10.0.0.2-10.0.0.4"]),
        nodes=parse_hosts(["10.0.0.5:2222"]),
        credentials=creds,
        version=KubeVersion.parse("v1.20.15"),
        pkg=Path("/tmp/kube1.20.15.tar.gz"),
    )
    store = StateStore(tmp_path / "home")
    state = ClusterState(
        settings=spec_mod.to_values(spec),
        members=[
            Member("10.0.0.2", "master", "10.0.0.2", "m1"),
            Member("10.0.0.5:2222", "node", "10.0.0.5"),
        ],
        host_keys={"10.0.0.2:22": "ssh-ed25519 AAAAC3Nza"},
        status="ready",
    )
    store.save(state)
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert store.home.stat().st_mode & 0o777 == 0o700
    text = store.path.read_text()
    assert "hunter2-pw" not in text and "kp-secret" not in text
    loaded = store.load()
    assert loaded is not None
    assert [m.address for m in loaded.masters] == ["10.0.0.2"] and loaded.nodes[
        0
    ].address == "10.0.0.5:2222"
    assert loaded.host_keys == state.host_keys and loaded.status == "ready"
    # join/clean rebuild the spec from the saved settings plus fresh credentials
    rebuilt = spec_mod.build(loaded.settings, spec_mod.Credentials(password="x"))
    assert rebuilt.masters == spec.masters and rebuilt.nodes == spec.nodes
    assert rebuilt.version == spec.version and rebuilt.pkg == spec.pkg
    assert yaml.safe_load(text)["settings"]["user"] == "root"


def test_missing_state_is_none_and_env_sets_home(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SEALOS_HOME", str(tmp_path / "h"))
    store = StateStore()
    assert store.path == tmp_path / "h" / "config.yaml"
    assert store.load() is None


def test_sealos_home_and_logs_are_made_0700_whatever_the_umask(tmp_path: Path):
    """The log's mkdir came first and made ~/.sealos 0755 (only `logs/` got mode 0700)."""
    import os

    old = os.umask(0o022)
    try:
        home = tmp_path / "user" / ".sealos"
        log = CommandLog(new_log_path(home, "init"), Redactor())
        log.close()
        assert home.stat().st_mode & 0o777 == 0o700
        assert (home / "logs").stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "user").stat().st_mode & 0o777 == 0o700
        other = tmp_path / "other" / ".sealos"
        StateStore(other).save(ClusterState())
        assert other.stat().st_mode & 0o777 == 0o700
        existing = tmp_path / "shared"
        existing.mkdir(mode=0o755)
        StateStore(existing).save(ClusterState())  # a folder not made by sealos is left alone
        assert existing.stat().st_mode & 0o777 == 0o755
    finally:
        os.umask(old)


@pytest.mark.parametrize(
    ("secrets", "text", "expected"),
    [
        # a common password is masked as a whole token, never inside a path or a word
        (["root"], "echo root", f"echo {MASK}"),
        (["root"], "rm -rf /root/kube rootfs", "rm -rf /root/kube rootfs"),
        (
            ["root"],
            "--password=root 'root' user:root@h",
            f"--password={MASK} '{MASK}' user:{MASK}@h",
        ),
        # short passwords are masked too (they were ignored under 3 characters)
        (["ab"], "sshpass -p ab ssh", f"sshpass -p {MASK} ssh"),
        (["x"], "pw=x and x/y", f"pw={MASK} and x/y"),
        # a long secret goes wherever it appears
        (["s3cret-passw0rd"], "https://u:s3cret-passw0rd@h/p", f"https://u:{MASK}@h/p"),
        # known shapes, registered or not
        (
            [],
            '{"certificateKey": "' + KEY + '", "x": 1}',
            '{"certificateKey": "' + MASK + '", "x": 1}',
        ),
        ([], "kubeadm join --token abcdef.0123456789abcdef", f"kubeadm join --token {MASK}"),
        ([], "t=abcdef.0123456789abcdef", f"t={MASK}"),
    ],
)
def test_redaction_rule(secrets, text, expected):
    assert Redactor(*secrets)(text) == expected


def test_pem_blocks_are_masked_but_their_markers_stay():
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----"
    out = Redactor()(f"key:\n{pem}\ndone")
    assert "MIIEowIBAAKCAQEA" not in out and "abc" not in out
    assert "-----BEGIN RSA PRIVATE KEY-----" in out and out.endswith("-----\ndone")
