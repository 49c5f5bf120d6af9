"""One `Host` over asyncssh: run a command (timeout, stdin), upload with progress and SHA-256 skip,
download. Every error names the host and says what to do.

Host keys (before any password is sent): a host is known by the keys ~/.ssh/known_hosts and
/etc/ssh/ssh_known_hosts list for it and by the key sealos pinned for it in its state. A known
host must show one of its keys. An unknown host's key is taken and pinned under the default
policy accept-new (OpenSSH's StrictHostKeyChecking=accept-new), refused under strict; tofu
reads no known_hosts file (sealos's pins only).

Jump host (--bastion): the bastion is one more `SSHConnection` (its key checked and pinned like
any host's), opened once and shared; every other host's SSH session runs over a direct-tcpip
channel of it (asyncssh's `tunnel=`), so the hosts need to accept SSH only from the bastion.

Sudo (a login user that is not root): every command runs as root through `sudo -H -- bash -c`.
Password sudo gets `-k -S -p ''`: the cached timestamp is ignored (so sudo always reads the
password, never leaving it for the command), no prompt text lands in stderr, and the password is
the first line of stdin (the command's own input follows it); never argv. Passwordless sudo
(`sudo -n true` succeeds) gets `-n` and no password. SFTP runs as the login user: files go to a
private staging folder in its home and are moved into place by a sudo'd command; reads go
through `sudo base64`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import posixpath
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import asyncssh

from sealos.addresses import HostAddress
from sealos.errors import CommandError, HostError, SpecError
from sealos.logfile import CommandLog
from sealos.redaction import Redactor
from sealos.remote_paths import PART, q
from sealos.spec import (
    BASTION_PASSWORD_ENV,
    PASSWORD_ENV,
    PK_PASSWORD_ENV,
    SUDO_PASSWORD_ENV,
    Credentials,
)

DEFAULT_LOGIN_TIMEOUT = 30.0
DEFAULT_COMMAND_TIMEOUT = 900.0  # kubeadm init may wait minutes for the control plane
SUDO_CHECK_TIMEOUT = 60.0
STAGING = ".sealos-staging"  # in the login user's home: uploads wait there for a sudo'd move
SUDO_NOPASSWD = "nopasswd"
SUDO_PASSWORD = "password"  # noqa: S105 (a mode's name)

Progress = Callable[[int, int], None]
_CIPHERS = [
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
]


@dataclass
class CommandResult:
    """What a finished remote command gave back."""

    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.exit_status == 0


@dataclass(frozen=True)
class CommandTiming:
    """When a remote command started (monotonic), how long it took, what it was (redacted)."""

    started: float
    seconds: float
    command: str


def load_client_keys(credentials: Credentials) -> Optional[list[asyncssh.SSHKey]]:
    """The --pk key, decrypted with --pk-passwd; a bad file or passphrase is the user's to fix."""
    path = credentials.key_path
    if path is None:
        return None
    try:
        return [asyncssh.read_private_key(str(path), credentials.key_passphrase)]
    except (OSError, asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as e:
        if credentials.key_passphrase is None and "passphrase" in str(e).lower():
            raise SpecError(
                f"the key {path} is encrypted; give its passphrase with --pk-passwd - (asks) "
                f"or {PK_PASSWORD_ENV}."
            ) from None
        raise SpecError(f"cannot read the key {path} ({e}); check --pk and --pk-passwd.") from None


def key_file_warning(path: Optional[Path]) -> Optional[str]:
    """A warning when the private key file can be read by its group or others (as OpenSSH's
    "UNPROTECTED PRIVATE KEY FILE"); None when it is private or there is none."""
    if path is None:
        return None
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    if mode & 0o077 == 0:
        return None
    return (
        f"the key file {path} can be read by others (mode {mode:04o}); make it private: "
        f"chmod 600 {path}."
    )


KNOWN_HOSTS_FILES = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")


@dataclass
class KnownHosts:
    """The known_hosts files a run trusts (read once), and which ones they were."""

    entries: asyncssh.SSHKnownHosts
    files: tuple[str, ...]  # the files looked at, as the user knows them (~/.ssh/known_hosts)

    def keys_for(self, host: str, addr: str, port: int) -> tuple[list[Any], list[Any], list[Any]]:
        """Host keys, CA keys and revoked keys listed for host (its name or address) and port."""
        found = self.entries.match(host, addr, None if port == 22 else port)
        return list(found[0]), list(found[1]), list(found[2])


def load_known_hosts(policy: str, files: tuple[str, ...] = KNOWN_HOSTS_FILES) -> KnownHosts:
    """The readable known_hosts `files` (none under the tofu policy); a line OpenSSH would
    ignore (unreadable, an unknown marker) is ignored here too."""
    entries = asyncssh.SSHKnownHosts()
    looked = files if policy != "tofu" else ()
    for name in looked:
        try:
            text = Path(name).expanduser().read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            try:
                entries.load(line)
            except ValueError:
                continue
    return KnownHosts(entries, tuple(looked))


class _HostKeyClient(asyncssh.SSHClient):
    """Decides on a key the host's known keys do not hold (asyncssh accepts those itself): a
    known host's other key is refused; an unknown host's key is taken unless policy is strict."""

    def __init__(self, policy: str, pinned: Optional[asyncssh.SSHKey], listed: list[Any]) -> None:
        self.policy = policy
        self.pinned = pinned
        self.listed = listed  # the keys known_hosts files list for this host
        self.accepted: Optional[asyncssh.SSHKey] = None
        self.offered: Optional[asyncssh.SSHKey] = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.offered = key
        if self.pinned is not None or self.listed or self.policy == "strict":
            return False
        self.accepted = key
        return True


class _Tunnel:
    """asyncssh's `tunnel=` for one host behind the bastion: the bastion opens the TCP connection
    to the host (within the host's connect_timeout); failures name the host and the bastion."""

    def __init__(self, target: SSHConnection, bastion: SSHConnection) -> None:
        self.target = target
        self.bastion = bastion

    async def create_connection(self, session_factory: Any, host: str, port: int) -> Any:
        t, via = self.target, self.bastion.name
        conn = self.bastion._need()
        try:
            return await asyncio.wait_for(
                conn.create_connection(session_factory, host, port), t.connect_timeout
            )
        except (asyncio.TimeoutError, TimeoutError):
            raise HostError(
                t.name,
                f"the {via} got no answer from port {port} within {t.connect_timeout:g} s; "
                "check the address, that the host is up and that the bastion may reach it.",
                kind="unreachable",
            ) from None
        except asyncssh.ChannelOpenError as e:
            raise HostError(
                t.name,
                f"the {via} cannot reach port {port} ({e.reason or 'refused'}); check the "
                "address, that sshd runs there and that the bastion may reach it (or that the "
                "bastion's sshd allows TCP forwarding).",
                kind="unreachable",
            ) from None
        except (asyncssh.Error, OSError) as e:
            raise HostError(
                t.name,
                f"the connection to the {via} broke ({_reason(e)}); run the same command again.",
                kind="ssh",
            ) from None


class SSHConnection:
    """A connection to one host. Create, `await connect()`, use, `await close()`.

    `tunnel`: the bastion's connection to reach this host through (connected on first use,
    shared); `label` names what this connection is in messages ("bastion" for the jump host).
    """

    def __init__(
        self,
        address: HostAddress,
        credentials: Credentials,
        *,
        client_keys: Optional[list[asyncssh.SSHKey]] = None,
        pinned_key: Optional[str] = None,
        known_hosts: Optional[KnownHosts] = None,
        connect_timeout: float = 10.0,
        login_timeout: float = DEFAULT_LOGIN_TIMEOUT,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
        log: Optional[CommandLog] = None,
        tunnel: Optional[SSHConnection] = None,
        label: str = "",
    ) -> None:
        self.address = address
        self.tunnel = tunnel
        self.label = label
        self.credentials = credentials
        self.client_keys = client_keys
        self.pinned_key = pinned_key
        self.known_hosts = known_hosts
        self.connect_timeout = connect_timeout
        self.login_timeout = login_timeout
        self.command_timeout = command_timeout
        self.redact = log.redact if log is not None else Redactor(*credentials.secrets())
        self.log = log
        self.host_key: Optional[str] = None  # OpenSSH form of the key the host showed
        self.new_host_key = False  # True when that key was unknown and taken (accept-new, tofu)
        self.ip: str = address.host  # the address actually connected to (resolved)
        self._conn: Optional[asyncssh.SSHClientConnection] = None
        self._sftp: Optional[asyncssh.SFTPClient] = None
        self._staging: Optional[str] = None  # absolute path of the staging folder (sudo)
        self._staged = 0
        # How commands become root: None (logged in as root), SUDO_NOPASSWD or SUDO_PASSWORD;
        # check_sudo() decides it right after connect().
        self.sudo_mode: Optional[str] = None
        self.timings: list[CommandTiming] = []  # for benchmarks: where the time went
        self._shared_lock: Optional[asyncio.Lock] = None
        self._shared_failure: Optional[HostError] = None

    @property
    def name(self) -> str:
        """How messages name this host ("bastion HOST" for the jump host)."""
        return f"{self.label} {self.address}" if self.label else str(self.address)

    @property
    def connected(self) -> bool:
        """True between a successful connect() and close()."""
        return self._conn is not None

    # --- connection --------------------------------------------------------------------------

    async def connect_shared(self) -> None:
        """connect() once for all that share this connection (the hosts behind a bastion): the
        first caller connects, the others wait; a failure is raised again to each of them."""
        if self._shared_lock is None:
            self._shared_lock = asyncio.Lock()
        async with self._shared_lock:
            if self._conn is not None:
                return
            if self._shared_failure is not None:
                raise self._shared_failure
            try:
                await self.connect()
            except HostError as e:
                self._shared_failure = e
                raise

    async def connect(self) -> None:
        """Open the SSH connection; errors say whether it is the network, the login or the key.

        Reaching the port (directly, or from the bastion) must happen within `connect_timeout`;
        the SSH handshake and login then get `login_timeout` (a refused password can take seconds:
        PAM delays failures).
        """
        pinned = self._pinned()
        reach: dict[str, Any]
        sock: Optional[socket.socket] = None
        if self.tunnel is not None:
            await self.tunnel.connect_shared()
            self._log(
                "connect",
                f"ssh {self.credentials.user}@{self.address.key} via the {self.tunnel.name}",
            )
            self.ip = self.address.host
            reach = {"tunnel": _Tunnel(self, self.tunnel)}
        else:
            sock = await self._tcp_connect()
            reach = {"sock": sock}
        creds = self.credentials
        listed: list[Any] = []
        ca_keys: list[Any] = []
        revoked: list[Any] = []
        if self.known_hosts is not None and creds.host_key_policy != "tofu":
            listed, ca_keys, revoked = self.known_hosts.keys_for(
                self.address.host, self.ip, self.address.port
            )
        client = _HostKeyClient(creds.host_key_policy, pinned, listed)
        options: dict[str, Any] = {
            "username": creds.user,
            "known_hosts": ([*listed, *([pinned] if pinned else [])], ca_keys, revoked),
            "connect_timeout": self.login_timeout,
            "keepalive_interval": 15,
            "keepalive_count_max": 4,
            # AES-GCM first: with hardware AES it moves packages faster than chacha20.
            "encryption_algs": _CIPHERS,
        }
        if creds.password is not None:
            options["password"] = creds.password
        if self.client_keys is not None:
            options["client_keys"] = self.client_keys
        elif creds.password is not None:
            # A password was given: do not offer this machine's own keys or agent first.
            options["client_keys"] = None
            options["agent_path"] = None
        try:
            self._conn = await asyncssh.connect(
                self.address.host,
                self.address.port,
                client_factory=lambda: client,
                **reach,
                **options,
            )
        except HostError:
            raise  # the bastion could not reach this host (_Tunnel)
        except asyncssh.HostKeyNotVerifiable as e:
            raise self._host_key_error(client, str(e)) from None
        except asyncssh.PermissionDenied:
            raise HostError(self.name, self._auth_advice(), kind="auth") from None
        except (asyncio.TimeoutError, TimeoutError):
            raise HostError(
                self.name,
                "the port answers but the SSH login did not finish within "
                f"{self.login_timeout:g} s; check that sshd there works (it may be overloaded).",
                kind="ssh",
            ) from None
        except (asyncssh.Error, OSError) as e:
            raise HostError(
                self.name, f"SSH failed ({_reason(e)}); check sshd there.", kind="ssh"
            ) from None
        finally:
            if self._conn is None and sock is not None:
                sock.close()
        if self.tunnel is not None and not self.address.is_ip:
            self.ip = await self._address_seen_by_host()
        key = self._conn.get_server_host_key()
        self.host_key = key.export_public_key("openssh").decode().strip() if key else None
        self.new_host_key = client.accepted is not None
        self._log("connect", f"logged in at {self.ip}, host key {_fingerprint(key)}")

    @property
    def host_key_fingerprint(self) -> str:
        """SHA256:... of the key the host showed ('none' before connecting)."""
        key = asyncssh.import_public_key(self.host_key) if self.host_key else None
        return _fingerprint(key)

    async def _tcp_connect(self) -> socket.socket:
        """Reach host:port within connect_timeout; name lookups count as part of it."""
        loop = asyncio.get_running_loop()
        self._log("connect", f"ssh {self.credentials.user}@{self.address.key}")

        async def attempt() -> socket.socket:
            infos = await loop.getaddrinfo(
                self.address.host, self.address.port, type=socket.SOCK_STREAM
            )
            last: Optional[OSError] = None
            for family, kind, proto, _name, addr in infos:
                sock = socket.socket(family, kind, proto)
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, addr)
                except OSError as e:
                    sock.close()
                    last = e
                    continue
                self.ip = str(addr[0])
                return sock
            raise last or OSError("no address")

        try:
            return await asyncio.wait_for(attempt(), self.connect_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise HostError(
                self.name,
                f"no answer on port {self.address.port} within {self.connect_timeout:g} s; "
                "check the address and that the host is up.",
                kind="unreachable",
            ) from None
        except ConnectionRefusedError:
            raise HostError(
                self.name,
                f"connection refused on port {self.address.port}; "
                "check the SSH port and that sshd runs.",
                kind="unreachable",
            ) from None
        except socket.gaierror:
            raise HostError(
                self.name,
                "the host name does not resolve; check its spelling or use its IP.",
                kind="unreachable",
            ) from None
        except OSError as e:
            reason = e.strerror or str(e) or type(e).__name__
            raise HostError(
                self.name, f"cannot connect ({reason}); check the address.", kind="unreachable"
            ) from None

    async def _address_seen_by_host(self) -> str:
        """The host's own address of this SSH session (a name given behind a bastion is resolved
        there, not here): the third field of $SSH_CONNECTION; the name when it is not there."""
        with contextlib.suppress(HostError):
            done = await self.run(
                'printf %s "$SSH_CONNECTION"', timeout=30, check=False, as_login_user=True
            )
            fields = done.stdout.split()
            if len(fields) == 4:
                return fields[2]
        return self.address.host

    def _pinned(self) -> Optional[asyncssh.SSHKey]:
        """The key sealos pinned for this host; a pin that is not a key is the user's to fix."""
        if not self.pinned_key:
            return None
        try:
            return asyncssh.import_public_key(self.pinned_key)
        except (asyncssh.KeyImportError, ValueError):
            raise HostError(
                self.name,
                "the host key pinned for it in the sealos state file is not a valid key; remove "
                "its line under hostKeys there and run again (its key is then checked anew).",
                kind="hostkey",
            ) from None

    def _host_key_error(self, client: _HostKeyClient, reason: str) -> HostError:
        offered = _fingerprint(client.offered)
        if client.offered is None:  # revoked, or a certificate that did not validate
            why = f"its SSH host key was refused ({reason}); nothing was sent."
            return HostError(self.name, why, kind="hostkey")
        if client.pinned is not None:
            return HostError(
                self.name,
                f"its SSH host key changed (pinned {_fingerprint(client.pinned)}, now "
                f"{offered}); nothing was sent. If the host was reinstalled on purpose, remove "
                "its line under hostKeys in the sealos state file and run again.",
                kind="hostkey",
            )
        files = ", ".join(self.known_hosts.files if self.known_hosts else KNOWN_HOSTS_FILES)
        host = (
            self.address.host
            if self.address.port == 22
            else f"[{self.address.host}]:{self.address.port}"
        )
        if client.listed:
            return HostError(
                self.name,
                f"its SSH host key {offered} is not the one {files} lists for it "
                f"({_fingerprint(client.listed[0])}); nothing was sent. If the host was "
                f"reinstalled on purpose, remove the old key (ssh-keygen -R '{host}') and run "
                "again.",
                kind="hostkey",
            )
        return HostError(
            self.name,
            f"its SSH host key {offered} is known neither to {files} nor to sealos's pins, and "
            "--host-key-policy strict takes no new key; nothing was sent. Check the fingerprint "
            f"on the host, add the key to ~/.ssh/known_hosts (ssh-keyscan -p "
            f"{self.address.port} {self.address.host}), or use --host-key-policy accept-new.",
            kind="hostkey",
        )

    def _auth_advice(self) -> str:
        user = self.credentials.user
        if self.credentials.password is not None and self.label:
            return (
                f"the password for {user!r} was refused; set {BASTION_PASSWORD_ENV} to the "
                f"bastion's password (else --passwd or {PASSWORD_ENV} is used there too)."
            )
        if self.credentials.password is not None:
            return f"the password for {user!r} was refused; check --passwd (or {PASSWORD_ENV})."
        if self.credentials.key_path is not None:
            return f"the key {self.credentials.key_path} was refused for {user!r}; check --pk."
        return f"login as {user!r} failed: no password given; use --passwd, {PASSWORD_ENV} or --pk."

    async def close(self) -> None:
        """Close SFTP and SSH (idempotent)."""
        if self._sftp is not None:
            if self._staging is not None:  # the staging folder, when nothing is left in it
                with contextlib.suppress(asyncssh.Error, OSError):
                    await self._sftp.rmdir(self._staging)
                self._staging = None
            self._sftp.exit()
            self._sftp = None
        if self._conn is not None:
            self._conn.close()
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                await asyncio.wait_for(self._conn.wait_closed(), 5)
            self._conn = None

    def _need(self) -> asyncssh.SSHClientConnection:
        if self._conn is None:
            raise HostError(self.name, "not connected (internal error: connect() first).")
        return self._conn

    # --- commands ----------------------------------------------------------------------------

    async def run(
        self,
        command: str,
        *,
        input: Optional[str] = None,
        timeout: Optional[float] = None,
        check: bool = True,
        hide_output: bool = False,
        label: Optional[str] = None,
        as_login_user: bool = False,
    ) -> CommandResult:
        """Run `command` in the remote shell, as root (through sudo for a login user that is not
        root; `as_login_user` runs it as that user itself); stdin gets `input` (never logged).

        check=True raises CommandError (naming the host, command and stderr) on a non-zero exit;
        `label` names a long script in that message (the log always has the whole command).
        """
        shown = label or self.redact(command)
        conn = self._need()
        limit = self.command_timeout if timeout is None else timeout
        self._log("run", f"{command} (as {self.credentials.user})" if as_login_user else command)
        if input is not None:
            self._log("stdin", f"{len(input.encode())} bytes (not logged)")
        sent, sent_input = (command, input) if as_login_user else self.as_root(command, input)
        started = time.monotonic()
        try:
            # Without input, stdin is closed: a command that reads it must not wait for the timeout.
            stdin: dict[str, Any] = (
                {"input": sent_input} if sent_input is not None else {"stdin": asyncssh.DEVNULL}
            )
            done = await conn.run(sent, timeout=limit, check=False, errors="replace", **stdin)
        except asyncssh.TimeoutError as e:
            out, err = _text(e.stdout), _text(e.stderr)
            self._log_output(out, err, hide_output)
            self._log("exit", f"timed out after {limit:g} s")
            raise CommandError(self.name, shown, None, self.redact(err), self.redact(out)) from None
        except (asyncssh.Error, OSError) as e:
            self._log("exit", f"connection lost: {e}")
            raise HostError(
                self.name,
                f"the SSH connection broke while running `{shown[:80]}` ({e}); "
                "run the same command again to continue.",
                kind="ssh",
            ) from None
        status = done.exit_status if done.exit_status is not None else -1
        took = time.monotonic() - started
        self.timings.append(CommandTiming(started, took, self.redact(command)))
        result = CommandResult(status, _text(done.stdout), _text(done.stderr))
        self._log_output(result.stdout, result.stderr, hide_output)
        self._log("exit", f"{status} ({took:.2f} s)")
        if check and not result.ok:
            raise CommandError(
                self.name,
                shown,
                status,
                self.redact(result.stderr),
                self.redact(result.stdout),
            )
        return result

    def as_root(self, command: str, input: Optional[str]) -> tuple[str, Optional[str]]:
        """The command line and stdin that run `command` as root: unchanged when logged in as
        root (or before check_sudo(), which the Connect phase calls: as the login user); through
        sudo otherwise, the sudo password (if any) as stdin's first line, before
        the command's own input. The password is never part of the command line."""
        if self.sudo_mode is None:  # root, or check_sudo() not called: as the login user
            return command, input
        wrapped = f"bash -c {q(command)}"
        if self.sudo_mode == SUDO_NOPASSWD:
            return f"sudo -n -H -- {wrapped}", input
        password = self.credentials.sudo_password or ""
        return f"sudo -k -S -p '' -H -- {wrapped}", f"{password}\n{input or ''}"

    async def check_sudo(self) -> None:
        """For a login user that is not root: find how it becomes root (passwordless sudo, else
        sudo with the password) and refuse, naming the fix, when it cannot. No change is made."""
        if not self.credentials.sudo:
            self.sudo_mode = None
            return
        user = self.credentials.user
        fix_rights = (
            f"give {user!r} sudo rights there (e.g. usermod -aG sudo {user}) or log in as root "
            "(--user root)."
        )
        free = await self._as_login_user("sudo -n true")
        if free.ok:
            self.sudo_mode = SUDO_NOPASSWD
            self._log("sudo", f"{user} runs commands as root with passwordless sudo")
            return
        if free.exit_status == 127 or "not found" in free.stderr:
            raise HostError(
                self.name,
                f"sudo is not installed there, and {user!r} is not root; install sudo there or "
                "log in as root (--user root).",
                kind="auth",
            )
        if _not_allowed(free.stderr):
            raise HostError(self.name, f"{user!r} may not use sudo; {fix_rights}", kind="auth")
        password = self.credentials.sudo_password
        if not password:
            raise HostError(
                self.name,
                f"sudo asks {user!r} for a password and none was given; set "
                f"{SUDO_PASSWORD_ENV} (or --passwd, {PASSWORD_ENV}), or allow {user!r} "
                "passwordless sudo there.",
                kind="auth",
            )
        if "\n" in password or "\r" in password:
            raise SpecError(f"the sudo password holds a line break; check {SUDO_PASSWORD_ENV}.")
        asked = await self._as_login_user("sudo -k -S -p '' -- true", input=f"{password}\n")
        if asked.ok:
            self.sudo_mode = SUDO_PASSWORD
            self._log("sudo", f"{user} runs commands as root with sudo and its password")
            return
        if _not_allowed(asked.stderr):
            raise HostError(self.name, f"{user!r} may not use sudo; {fix_rights}", kind="auth")
        raise HostError(
            self.name,
            f"sudo refused the password for {user!r}; check {SUDO_PASSWORD_ENV} (it defaults to "
            "the SSH password, --passwd).",
            kind="auth",
        )

    async def _as_login_user(self, command: str, *, input: Optional[str] = None) -> CommandResult:
        """Run a short command as the login user itself (no sudo); for the sudo check. Output
        and stdin are not logged."""
        return await self.run(
            command,
            input=input,
            timeout=SUDO_CHECK_TIMEOUT,
            check=False,
            hide_output=True,
            as_login_user=True,
        )

    def _log_output(self, stdout: str, stderr: str, hide: bool) -> None:
        if hide:
            self._log("stdout", f"{len(stdout)} characters (not logged)")
            return
        if stdout.strip():
            self._log("stdout", stdout)
        if stderr.strip():
            self._log("stderr", stderr)

    def _log(self, kind: str, text: str) -> None:
        if self.log is not None:
            self.log.write(self.name, kind, text)

    # --- files -------------------------------------------------------------------------------

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = await self._need().start_sftp_client()
            except asyncssh.Error as e:
                raise HostError(
                    self.name,
                    f"SFTP is not available ({e.reason}); enable the sftp subsystem in sshd.",
                ) from None
        return self._sftp

    async def sha256(self, remote: str) -> Optional[str]:
        """SHA-256 of a remote file, or None when it does not exist."""
        result = await self.run(
            f"sha256sum -- {q(remote)} 2>/dev/null | cut -d' ' -f1", check=False
        )
        value = result.stdout.strip()
        return value if len(value) == 64 else None

    async def upload(
        self, local: Path, remote: str, *, mode: int = 0o644, progress: Optional[Progress] = None
    ) -> None:
        """Copy over SFTP to a temporary name, then rename: never a half file in place."""
        sftp = await self._sftp_client()
        tmp = f"{remote}{PART}"
        self._log("upload", f"{local} -> {remote}")

        def handler(_src: bytes, _dst: bytes, done: int, total: int) -> None:
            if progress is not None:
                progress(done, total)

        try:
            if self.sudo_mode is not None:

                async def put(staged: str) -> None:
                    await sftp.put(str(local), staged, progress_handler=handler)

                await self._write_staged(sftp, put, remote, mode)
                return
            await sftp.makedirs(posixpath.dirname(remote) or "/", exist_ok=True)
            # Block size left to asyncssh: it reads the server's limits (OpenSSH: 256 KiB).
            await sftp.put(str(local), tmp, progress_handler=handler)
            await sftp.chmod(tmp, mode)
            await self._rename(sftp, tmp, remote)
        except (asyncssh.SFTPError, OSError) as e:
            raise HostError(
                self.name,
                f"uploading {local.name} to {remote} failed ({_reason(e)}); check free disk there.",
            ) from None

    async def upload_if_changed(
        self,
        local: Path,
        remote: str,
        local_sha256: str,
        *,
        mode: int = 0o644,
        progress: Optional[Progress] = None,
        check_first: bool = True,
    ) -> bool:
        """Upload unless the host already has a file with the same SHA-256; True when copied.

        check_first=False skips hashing the remote file first (facts already said it differs).
        """
        if check_first and await self.sha256(remote) == local_sha256:
            self._log("upload", f"{remote} already has SHA-256 {local_sha256[:12]}…, skipped")
            return False
        await self.upload(local, remote, mode=mode, progress=progress)
        copied = await self.sha256(remote)
        if copied != local_sha256:
            raise HostError(
                self.name,
                f"{remote} has SHA-256 {copied} after upload, not {local_sha256}; "
                "check the disk there and run again.",
            )
        return True

    async def put_bytes(self, data: bytes, remote: str, *, mode: int = 0o644) -> None:
        """Write small content (a unit, a manifest) to a remote path atomically. No secrets."""
        sftp = await self._sftp_client()
        tmp = f"{remote}{PART}"
        self._log("write", f"{remote} ({len(data)} bytes, mode {mode:o})")
        try:
            if self.sudo_mode is not None:

                async def write(staged: str) -> None:
                    private = asyncssh.SFTPAttrs(permissions=0o600)
                    async with sftp.open(staged, "wb", attrs=private) as f:
                        await f.write(data)

                await self._write_staged(sftp, write, remote, mode)
                return
            await sftp.makedirs(posixpath.dirname(remote) or "/", exist_ok=True)
            async with sftp.open(tmp, "wb", attrs=asyncssh.SFTPAttrs(permissions=mode)) as f:
                await f.write(data)
            await sftp.chmod(tmp, mode)
            await self._rename(sftp, tmp, remote)
        except (asyncssh.SFTPError, OSError) as e:
            raise HostError(self.name, f"writing {remote} failed ({_reason(e)}).") from None

    async def read_bytes(self, remote: str) -> bytes:
        """Read a remote file whole (for small files such as manifests)."""
        if self.sudo_mode is not None:
            return await self._read_as_root(remote)
        sftp = await self._sftp_client()
        try:
            async with sftp.open(remote, "rb") as f:
                data = await f.read()
        except (asyncssh.SFTPError, OSError) as e:
            raise HostError(self.name, f"reading {remote} failed ({_reason(e)}).") from None
        return data if isinstance(data, bytes) else str(data).encode()

    async def download(self, remote: str, local: Path) -> None:
        """Copy a remote file to the operator's machine."""
        if self.sudo_mode is not None:
            self._log("download", f"{remote} -> {local}")
            data = await self._read_as_root(remote, "downloading")
            try:
                local.write_bytes(data)
            except OSError as e:
                raise HostError(
                    self.name, f"saving {remote} as {local} failed ({_reason(e)})."
                ) from None
            return
        sftp = await self._sftp_client()
        self._log("download", f"{remote} -> {local}")
        try:
            await sftp.get(remote, str(local))
        except (asyncssh.SFTPError, OSError) as e:
            raise HostError(self.name, f"downloading {remote} failed ({_reason(e)}).") from None

    async def _stage_path(self, sftp: asyncssh.SFTPClient) -> str:
        """A new file name in the login user's private staging folder (made 0700 on first use)."""
        if self._staging is None:
            home = await sftp.realpath(".")
            folder = posixpath.join(home, STAGING)
            await sftp.makedirs(folder, exist_ok=True)
            await sftp.chmod(folder, 0o700)
            self._staging = folder
        self._staged += 1
        return posixpath.join(self._staging, f"{self._staged}-{time.time_ns()}{PART}")

    async def _install_staged(self, staged: str, remote: str, mode: int) -> None:
        """As root: move a staged file beside `remote` (its temp name), make it root's with
        `mode`, rename it into place (never a half file in place)."""
        tmp = f"{remote}{PART}"
        await self.run(
            f"mkdir -p -- {q(posixpath.dirname(remote) or '/')} && "
            f"mv -f -- {q(staged)} {q(tmp)} && chown 0:0 -- {q(tmp)} && "
            f"chmod {mode:o} -- {q(tmp)} && mv -f -- {q(tmp)} {q(remote)}",
            label=f"install {remote}",
        )

    async def _write_staged(
        self,
        sftp: asyncssh.SFTPClient,
        write: Callable[[str], Awaitable[None]],
        remote: str,
        mode: int,
    ) -> None:
        """sudo: `write` the file into the staging folder as the login user, then install it as
        root (_install_staged); the staged file never outlives the call."""
        staged = await self._stage_path(sftp)
        try:
            await write(staged)
            await self._install_staged(staged, remote, mode)
        finally:
            with contextlib.suppress(asyncssh.SFTPError, OSError):
                await sftp.remove(staged)

    async def _read_as_root(self, remote: str, verb: str = "reading") -> bytes:
        """A root-only file's bytes, read through sudo (base64 on the wire, never logged)."""
        result = await self.run(f"base64 -- {q(remote)}", check=False, hide_output=True)
        if not result.ok:
            why = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no output"
            raise HostError(self.name, f"{verb} {remote} failed ({self.redact(why)}).")
        try:
            return base64.b64decode(result.stdout)
        except ValueError:
            raise HostError(self.name, f"{verb} {remote} gave unreadable output.") from None

    async def _rename(self, sftp: asyncssh.SFTPClient, src: str, dst: str) -> None:
        try:
            await sftp.posix_rename(src, dst)
        except (asyncssh.SFTPOpUnsupported, asyncssh.SFTPError):
            await self.run(f"mv -f -- {q(src)} {q(dst)}")


def _not_allowed(stderr: str) -> bool:
    """True when sudo said the user may not use it at all (not a wrong password)."""
    text = stderr.lower()
    return "not in the sudoers" in text or "not allowed to" in text or "may not run sudo" in text


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _reason(e: Exception) -> str:
    return getattr(e, "reason", None) or getattr(e, "strerror", None) or str(e) or type(e).__name__


def _fingerprint(key: Optional[asyncssh.SSHKey]) -> str:
    return key.get_fingerprint("sha256") if key is not None else "none"
