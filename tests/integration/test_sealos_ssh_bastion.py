# ruff: noqa: F811 (the sshd fixture, imported, is every test's argument)
"""Hosts reached through a bastion (--bastion), against the real OpenSSH server that
test_sealos_ssh starts on 127.0.0.1 (root): it serves as the jump host and as the target."""

from __future__ import annotations

import asyncio
import socket

import asyncssh
import pytest
from test_sealos_ssh import Sshd, free_port, root_host, sshd  # noqa: F401

from sealos.addresses import HostAddress
from sealos.errors import HostError
from sealos.spec import Credentials
from sealos.ssh import SSHConnection, load_client_keys

pytestmark = pytest.mark.root


def behind(bastion: SSHConnection, sshd: Sshd, host: str = "127.0.0.1", port: int = 0):
    creds = Credentials(user="root", key_path=sshd.key_path)
    return SSHConnection(
        HostAddress(host, port or sshd.port),
        creds,
        client_keys=load_client_keys(creds),
        tunnel=bastion,
        connect_timeout=3,
    )


def test_hosts_share_one_bastion_connection(sshd: Sshd):
    async def body():
        bastion = root_host(sshd, label="bastion")
        first, second = behind(bastion, sshd), behind(bastion, sshd, host="localhost")
        await asyncio.gather(first.connect(), second.connect())
        try:
            assert bastion.connected and bastion.host_key  # connected once, its key seen
            assert (await first.run("echo one")).stdout == "one\n"
            assert second.ip == "127.0.0.1"  # the name was resolved on the bastion's side
            assert first.host_key == bastion.host_key  # the target's own key was checked too
            await bastion.close()  # the targets' sessions ran over it
            with pytest.raises(HostError):
                await first.run("echo gone", timeout=5)
        finally:
            for h in (first, second, bastion):
                await h.close()

    asyncio.run(body())


def test_a_target_the_bastion_cannot_reach_is_named_with_the_fix(sshd: Sshd):
    closed = free_port()

    async def body():
        bastion = root_host(sshd, label="bastion")
        target = behind(bastion, sshd, port=closed)
        try:
            with pytest.raises(HostError) as e:
                await target.connect()
        finally:
            await target.close()
            await bastion.close()
        return e.value

    err = asyncio.run(body())
    assert err.kind == "unreachable" and err.host == f"127.0.0.1:{closed}"
    assert str(err).startswith(
        f"127.0.0.1:{closed}: the bastion 127.0.0.1:{sshd.port} cannot reach port {closed} ("
    ), str(err)


def test_a_bastion_refusing_the_login_fails_every_target_once(sshd: Sshd):
    async def body():
        bastion = SSHConnection(
            HostAddress("127.0.0.1", sshd.port),
            Credentials(user=sshd.user, password="not-the-password"),
            label="bastion",
        )
        targets = [behind(bastion, sshd), behind(bastion, sshd)]
        errors = await asyncio.gather(*(t.connect() for t in targets), return_exceptions=True)
        await bastion.close()
        return errors

    errors = asyncio.run(body())
    assert all(isinstance(e, HostError) for e in errors), errors
    assert errors[0] is errors[1]  # one login attempt, its error given to each
    assert str(errors[0]) == (
        f"bastion 127.0.0.1:{sshd.port}: the password for {sshd.user!r} was refused; set "
        "SEALOS_BASTION_PASSWORD to the bastion's password (else --passwd or SEALOS_PASSWORD is "
        "used there too)."
    )


def test_an_unreachable_bastion_names_itself(sshd: Sshd):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def body():
        bastion = SSHConnection(
            HostAddress("127.0.0.1", port), Credentials(password="x"), label="bastion"
        )
        with pytest.raises(HostError) as e:
            await behind(bastion, sshd).connect()
        return e.value

    err = asyncio.run(body())
    assert str(err).startswith(f"bastion 127.0.0.1:{port}: connection refused on port {port}")


def test_a_bastion_showing_another_key_than_its_pin_is_refused(sshd: Sshd):
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()

    async def body():
        bastion = root_host(sshd, label="bastion", pinned_key=other)
        target = behind(bastion, sshd)
        with pytest.raises(HostError) as e:
            await target.connect()
        await bastion.close()
        return e.value, target.connected

    err, reached = asyncio.run(body())
    assert err.kind == "hostkey" and not reached
    assert str(err).startswith(f"bastion 127.0.0.1:{sshd.port}: its SSH host key changed (pinned")
