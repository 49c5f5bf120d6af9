"""Sudo users (issue 11): a login user that is not root runs every command as root through sudo.
The password goes to sudo on stdin (its first line, before the command's own input), never in
the command line; passwordless sudo is detected and gets no password; a user without sudo rights
or a wrong password is refused with one sentence naming the host; the sudo password is a secret.

The SSH connection underneath is a recording stand-in for asyncssh's (what was sent is what is
checked); the lab test (tests/integration/test_sealos_sudo_lab.py) runs the real sudo.
"""

from __future__ import annotations

import asyncio
import base64
import shlex
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Optional

import pytest

from sealos.addresses import HostAddress
from sealos.errors import HostError
from sealos.logfile import CommandLog
from sealos.redaction import Redactor
from sealos.spec import Credentials, credentials_from
from sealos.ssh import SSHConnection

PASSWORD = "S3cret-sudo-pw"
ADDRESS = HostAddress("10.0.0.2", 22)


class RecordingConn:
    """Records each command and its stdin; `answer(command, input)` gives (status, out, err)."""

    def __init__(self, answer: Callable[[str, Optional[str]], tuple[int, str, str]]) -> None:
        self.answer = answer
        self.sent: list[tuple[str, Optional[str]]] = []

    async def run(self, command: str, **kw: Any) -> Any:
        stdin = kw.get("input")
        self.sent.append((command, stdin))
        status, out, err = self.answer(command, stdin)
        return SimpleNamespace(exit_status=status, stdout=out, stderr=err)


def connection(user: str, answer: Any, sudo_password: Optional[str] = PASSWORD) -> SSHConnection:
    creds = Credentials(user=user, password=PASSWORD, sudo_password=sudo_password)
    conn = SSHConnection(ADDRESS, creds)
    conn._conn = RecordingConn(answer)  # type: ignore[assignment]
    return conn


def sudo_host(password_ok: bool = True, nopasswd: bool = False, allowed: bool = True) -> Any:
    """A host's sudo as the answers to our commands: (status, stdout, stderr)."""

    def answer(command: str, stdin: Optional[str]) -> tuple[int, str, str]:
        argv = shlex.split(command)
        if argv[0] != "sudo":
            return 0, "", ""
        if "-n" in argv:
            if nopasswd:
                return 0, "", ""
            return 1, "", "sudo: a password is required\n"
        first, _, rest = (stdin or "").partition("\n")
        if first != PASSWORD or not password_ok:
            return 1, "", "sudo: 1 incorrect password attempt\n"
        if not allowed:
            return 1, "", "admin is not in the sudoers file.\n"
        return 0, f"ran as root: {argv[-1]}; stdin={rest!r}", ""

    return answer


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_password_sudo_feeds_the_password_on_stdin_never_in_argv() -> None:
    conn = connection("admin", sudo_host())
    run(conn.check_sudo())
    assert conn.sudo_mode == "password"
    result = run(conn.run("cat > /etc/x.conf", input="payload\n"))
    command, stdin = conn._conn.sent[-1]  # type: ignore[union-attr]
    assert PASSWORD not in command
    argv = shlex.split(command)
    # -k: a cached timestamp never makes sudo skip reading stdin; -p '': no prompt in stderr
    assert argv[:6] == ["sudo", "-k", "-S", "-p", "", "-H"]
    assert argv[-3:] == ["bash", "-c", "cat > /etc/x.conf"]
    # the password is the first line, the command's own input follows it unchanged
    assert stdin == f"{PASSWORD}\npayload\n"
    assert result.stdout == "ran as root: cat > /etc/x.conf; stdin='payload\\n'"


def test_password_sudo_without_input_sends_only_the_password() -> None:
    conn = connection("admin", sudo_host())
    run(conn.check_sudo())
    run(conn.run("true"))
    assert conn._conn.sent[-1][1] == f"{PASSWORD}\n"  # type: ignore[union-attr]


def test_passwordless_sudo_is_detected_and_gets_no_password() -> None:
    conn = connection("admin", sudo_host(nopasswd=True))
    run(conn.check_sudo())
    assert conn.sudo_mode == "nopasswd"
    run(conn.run("id -u", input="data"))
    command, stdin = conn._conn.sent[-1]  # type: ignore[union-attr]
    assert shlex.split(command)[:4] == ["sudo", "-n", "-H", "--"]
    assert stdin == "data"
    assert all(PASSWORD not in (s or "") for _, s in conn._conn.sent)  # type: ignore[union-attr]


def test_root_runs_commands_unchanged() -> None:
    conn = connection("root", sudo_host())
    run(conn.check_sudo())
    assert conn.sudo_mode is None
    run(conn.run("id -u"))
    assert conn._conn.sent == [("id -u", None)]  # type: ignore[union-attr]


def test_wrong_sudo_password_is_one_sentence_naming_the_host_and_the_fix() -> None:
    conn = connection("admin", sudo_host(password_ok=False))
    with pytest.raises(HostError) as e:
        run(conn.check_sudo())
    text = str(e.value)
    assert "10.0.0.2" in text and "SEALOS_SUDO_PASSWORD" in text and "refused" in text
    assert PASSWORD not in text
    # nothing but the checks ran
    assert [shlex.split(c)[-1] for c, _ in conn._conn.sent] == ["true", "true"]  # type: ignore[union-attr]


def test_user_without_sudo_rights_is_refused_with_the_fix() -> None:
    conn = connection("admin", sudo_host(allowed=False))
    with pytest.raises(HostError) as e:
        run(conn.check_sudo())
    assert "'admin' may not use sudo" in str(e.value) and "usermod -aG sudo admin" in str(e.value)


def test_password_sudo_without_a_password_is_refused() -> None:
    conn = connection("admin", sudo_host(), sudo_password=None)
    with pytest.raises(HostError) as e:
        run(conn.check_sudo())
    assert "SEALOS_SUDO_PASSWORD" in str(e.value) and "passwordless" in str(e.value)


def test_before_the_sudo_check_commands_run_as_the_login_user_without_a_password() -> None:
    conn = connection("admin", sudo_host())
    run(conn.run("id -u"))
    assert conn._conn.sent == [("id -u", None)]  # type: ignore[union-attr]


def test_reads_go_through_sudo() -> None:
    data = b"apiVersion: v1\x00\xff"

    def answer(command: str, stdin: Optional[str]) -> tuple[int, str, str]:
        if shlex.split(command)[-1].startswith("base64 -- "):
            return 0, base64.encodebytes(data).decode(), ""
        return sudo_host(nopasswd=True)(command, stdin)

    conn = connection("admin", answer)
    run(conn.check_sudo())
    assert run(conn.read_bytes("/etc/kubernetes/admin.conf")) == data
    assert shlex.split(conn._conn.sent[-1][0])[-1] == "base64 -- /etc/kubernetes/admin.conf"  # type: ignore[union-attr]


def test_sudo_password_from_env_or_ssh_password_and_it_is_a_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SEALOS_SUDO_PASSWORD", raising=False)
    monkeypatch.delenv("SEALOS_PASSWORD", raising=False)
    creds = credentials_from("admin", "ssh-pw-1", None, None)
    assert creds.sudo and creds.sudo_password == "ssh-pw-1"
    monkeypatch.setenv("SEALOS_SUDO_PASSWORD", PASSWORD)
    creds = credentials_from("admin", None, "/k", None)
    assert creds.sudo_password == PASSWORD and PASSWORD in creds.secrets()
    assert PASSWORD not in repr(creds)
    assert not credentials_from("root", None, "/k", None).sudo
    log = CommandLog(tmp_path / "run.log", Redactor(*creds.secrets()))
    log.write("h", "stderr", f"echo {PASSWORD} | sudo -S")
    log.close()
    text = (tmp_path / "run.log").read_text()
    assert PASSWORD not in text and "<redacted>" in text
