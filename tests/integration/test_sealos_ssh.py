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
from sealos.ssh import SSHConnection, load_client_keys

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
