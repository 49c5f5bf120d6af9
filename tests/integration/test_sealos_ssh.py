"""The SSH layer against a real OpenSSH server started by this module on 127.0.0.1 (root).

Root logs in with a key; a throwaway user, created here and removed afterwards, logs in with a
password full of shell metacharacters.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

from sealos.addresses import HostAddress
from sealos.errors import CommandError, HostError
from sealos.logfile import CommandLog
from sealos.redaction import Redactor
from sealos.spec import Credentials
from sealos.ssh import SSHConnection, load_client_keys, load_known_hosts

pytestmark = pytest.mark.root

PASSWORD = "p a'ss\"wo$rd;\\ `x` *"


@dataclass
class Sshd:
    port: int
    dir: Path
    key_path: Path
    user: str
    password: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory) -> Iterator[Sshd]:
    if os.geteuid() != 0:
        pytest.skip("starting sshd needs root")
    d = tmp_path_factory.mktemp("sshd")
    os.chmod(d, 0o755)  # noqa: S103 (the throwaway user must reach its home inside)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True
    )
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client_key")], check=True
    )
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    user = "sealost" + secrets.token_hex(3)
    home = d / "home"
    subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", user], check=True)
    proc = None
    try:
        home.mkdir()
        shutil.chown(home, user)
        subprocess.run(["chpasswd"], input=f"{user}:{PASSWORD}\n", text=True, check=True)
        port = free_port()
        (d / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n"
            f"AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "StrictModes no\nSubsystem sftp /usr/lib/openssh/sftp-server\n"
            "LogLevel VERBOSE\nMaxStartups 50\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        log = (d / "sshd.log").open("w")
        proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=log
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield Sshd(port, d, d / "client_key", user, PASSWORD)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        subprocess.run(["userdel", user], check=False)


def root_host(sshd: Sshd, log: CommandLog | None = None, **kw) -> SSHConnection:
    creds = Credentials(user="root", key_path=sshd.key_path)
    return SSHConnection(
        HostAddress("127.0.0.1", sshd.port),
        creds,
        client_keys=load_client_keys(creds),
        log=log,
        **kw,
    )


def run(coro):
    return asyncio.run(coro)


def test_run_stdin_exit_codes_and_timeout(sshd: Sshd):
    async def body():
        h = root_host(sshd)
        await h.connect()
        try:
            r = await h.run("id -u; cat", input="from stdin\n")
            assert r.stdout == "0\nfrom stdin\n"
            with pytest.raises(CommandError) as e:
                await h.run("echo doomed >&2; exit 3")
            assert e.value.exit_status == 3 and "doomed" in str(e.value)
            assert str(e.value).startswith(f"127.0.0.1:{sshd.port}: `echo doomed")
            r = await h.run("exit 4", check=False)
            assert r.exit_status == 4
            t0 = time.monotonic()
            with pytest.raises(CommandError) as e:
                await h.run("sleep 30", timeout=0.5)
            assert e.value.exit_status is None and "timed out" in str(e.value)
            assert time.monotonic() - t0 < 5
        finally:
            await h.close()

    run(body())


def test_host_key_pinned_on_first_use_and_a_changed_key_refused(sshd: Sshd, tmp_path: Path):
    async def body():
        first = root_host(sshd)
        await first.connect()
        await first.close()
        assert first.host_key and first.host_key.startswith("ssh-ed25519 ")
        again = root_host(sshd, pinned_key=first.host_key)
        await again.connect()
        await again.close()
        other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
        stranger = root_host(sshd, pinned_key=other)
        with pytest.raises(HostError) as e:
            await stranger.connect()
        assert e.value.kind == "hostkey" and "host key changed" in str(e.value)

    run(body())


def known_hosts_with(tmp_path: Path, port: int, key_line: str, policy: str = "accept-new"):
    """A known_hosts file in a throwaway HOME listing `key_line` for 127.0.0.1:port, loaded the
    way a run loads ~/.ssh/known_hosts."""
    ssh_dir = tmp_path / "home" / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    (ssh_dir / "known_hosts").write_text(
        "# a line OpenSSH ignores, and one asyncssh cannot parse:\n@bogus x y\n"
        f"[127.0.0.1]:{port} {key_line}\n"
    )
    return load_known_hosts(policy, (str(ssh_dir / "known_hosts"),))


def server_key(sshd: Sshd) -> str:
    return " ".join((sshd.dir / "host_key.pub").read_text().split()[:2])


def other_key() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()


def policy_host(sshd: Sshd, policy: str, **kw) -> SSHConnection:
    creds = Credentials(user="root", key_path=sshd.key_path, host_key_policy=policy)
    return SSHConnection(
        HostAddress("127.0.0.1", sshd.port), creds, client_keys=load_client_keys(creds), **kw
    )


def test_known_hosts_is_honoured_and_a_key_differing_from_it_is_refused(sshd, tmp_path):
    async def body():
        wrong = known_hosts_with(tmp_path, sshd.port, other_key())
        h = policy_host(sshd, "accept-new", known_hosts=wrong)
        with pytest.raises(HostError) as e:
            await h.connect()
        assert e.value.kind == "hostkey" and not h.connected
        assert "is not the one" in str(e.value) and "known_hosts lists for it" in str(e.value)
        assert f"ssh-keygen -R '[127.0.0.1]:{sshd.port}'" in str(e.value)
        right = known_hosts_with(tmp_path, sshd.port, server_key(sshd))
        ok = policy_host(sshd, "accept-new", known_hosts=right)
        await ok.connect()
        assert not ok.new_host_key  # known: nothing new taken
        await ok.close()
        # tofu reads no known_hosts file: the stale line does not matter, the key is new
        loose = policy_host(sshd, "tofu", known_hosts=load_known_hosts("tofu"))
        await loose.connect()
        assert loose.new_host_key
        await loose.close()

    run(body())


def test_strict_refuses_an_unknown_key_and_takes_a_known_or_pinned_one(sshd, tmp_path):
    async def body():
        empty = known_hosts_with(tmp_path, sshd.port + 1, other_key())  # another port's key
        h = policy_host(sshd, "strict", known_hosts=empty)
        with pytest.raises(HostError) as e:
            await h.connect()
        assert e.value.kind == "hostkey" and "strict takes no new key" in str(e.value)
        assert f"ssh-keyscan -p {sshd.port} 127.0.0.1" in str(e.value)
        listed = known_hosts_with(tmp_path, sshd.port, server_key(sshd), policy="strict")
        ok = policy_host(sshd, "strict", known_hosts=listed)
        await ok.connect()
        await ok.close()
        pinned = policy_host(sshd, "strict", known_hosts=empty, pinned_key=server_key(sshd))
        await pinned.connect()
        await pinned.close()
        # the default accept-new takes it, and says so
        new = policy_host(sshd, "accept-new", known_hosts=empty)
        await new.connect()
        assert new.new_host_key and new.host_key_fingerprint.startswith("SHA256:")
        await new.close()

    run(body())


def test_a_corrupt_pin_is_one_sentence_with_the_fix(sshd):
    async def body():
        h = policy_host(sshd, "accept-new", pinned_key="ssh-ed25519 not-base64!")
        with pytest.raises(HostError) as e:
            await h.connect()
        assert e.value.kind == "hostkey" and "remove its line under hostKeys" in str(e.value)

    run(body())


def test_the_default_known_hosts_file_is_the_users(tmp_path, monkeypatch, sshd):
    wrong = known_hosts_with(tmp_path, sshd.port, other_key())
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    found = load_known_hosts("accept-new")
    assert found.files[0] == "~/.ssh/known_hosts"
    assert (
        found.keys_for("127.0.0.1", "127.0.0.1", sshd.port)[0]
        == wrong.keys_for("127.0.0.1", "127.0.0.1", sshd.port)[0]
    )


def test_password_with_shell_metacharacters_and_wrong_password(sshd: Sshd, tmp_path: Path):
    log_path = tmp_path / "run.log"

    async def body():
        creds = Credentials(user=sshd.user, password=sshd.password)
        log = CommandLog(log_path, Redactor(*creds.secrets()))
        h = SSHConnection(HostAddress("127.0.0.1", sshd.port), creds, log=log)
        await h.connect()
        r = await h.run("whoami; printf '%s\\n' \"$1\"", input=None)
        assert r.stdout.splitlines()[0] == sshd.user
        # A command whose output holds the password: the log must not.
        await h.run(f"printf '%s' {__import__('shlex').quote(sshd.password)}")
        await h.close()
        log.close()
        bad = SSHConnection(
            HostAddress("127.0.0.1", sshd.port), Credentials(user=sshd.user, password="wrong")
        )
        with pytest.raises(HostError) as e:
            await bad.connect()
        assert (
            e.value.kind == "auth"
            and "password" in str(e.value)
            and "SEALOS_PASSWORD" in str(e.value)
        )

    run(body())
    text = log_path.read_text()
    assert sshd.password not in text and "<redacted>" in text
    assert oct(log_path.stat().st_mode & 0o777) == "0o600"


def test_refused_port_and_silent_server_fail_fast_naming_the_host(sshd: Sshd):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    port = silent.getsockname()[1]
    stop = threading.Event()

    async def body():
        closed = SSHConnection(HostAddress("127.0.0.1", free_port()), Credentials(password="x"))
        with pytest.raises(HostError) as e:
            await closed.connect()
        assert e.value.kind == "unreachable" and "refused" in str(e.value)
        mute = SSHConnection(
            HostAddress("127.0.0.1", port), Credentials(password="x"), login_timeout=1.0
        )
        t0 = time.monotonic()
        with pytest.raises(HostError) as e:
            await mute.connect()
        assert e.value.kind == "ssh" and "login did not finish within 1 s" in str(e.value)
        assert time.monotonic() - t0 < 4

    try:
        run(body())
    finally:
        stop.set()
        silent.close()


def test_upload_with_progress_skip_by_checksum_and_read_back(sshd: Sshd, tmp_path: Path):
    src = tmp_path / "pkg.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    import hashlib

    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    remote_dir = sshd.dir / "remote"
    seen: list[tuple[int, int]] = []

    async def body():
        h = root_host(sshd)
        await h.connect()
        try:
            target = str(remote_dir / "sub" / "pkg.bin")
            copied = await h.upload_if_changed(
                src, target, digest, progress=lambda d, t: seen.append((d, t))
            )
            assert copied
            assert not await h.upload_if_changed(src, target, digest)
            await h.put_bytes(b"[Unit]\n", str(remote_dir / "unit"), mode=0o600)
            assert await h.read_bytes(str(remote_dir / "unit")) == b"[Unit]\n"
            await h.download(target, tmp_path / "back.bin")
            assert await h.sha256(str(remote_dir / "missing")) is None
        finally:
            await h.close()

    run(body())
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    assert seen and seen[-1] == (src.stat().st_size, src.stat().st_size)
    assert oct((remote_dir / "unit").stat().st_mode & 0o777) == "0o600"
    assert not list(remote_dir.rglob("*.sealos-part"))


def test_a_host_name_is_resolved_and_its_address_recorded(sshd: Sshd):
    async def body():
        # Resolved by /etc/hosts: no name server is asked.
        creds = Credentials(user="root", key_path=sshd.key_path)
        h = SSHConnection(
            HostAddress("localhost", sshd.port), creds, client_keys=load_client_keys(creds)
        )
        await h.connect()
        try:
            assert h.ip == "127.0.0.1"
            assert (await h.run("echo ok")).stdout == "ok\n"
        finally:
            await h.close()

    run(body())


def test_commands_without_input_see_end_of_file_at_once(sshd: Sshd):
    async def body():
        h = root_host(sshd)
        await h.connect()
        try:
            t0 = time.monotonic()
            r = await h.run("cat; echo done", timeout=10)
            assert r.stdout == "done\n" and time.monotonic() - t0 < 5
        finally:
            await h.close()

    run(body())
