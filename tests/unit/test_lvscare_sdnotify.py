"""lvscare's READY=1 to systemd, received on a real datagram socket like systemd's."""

from __future__ import annotations

import os
import socket

from lvscare.sdnotify import notify


def receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2)
    return sock


def test_ready_reaches_a_socket_path(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    with receiver(path) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert notify("READY=1")
        assert sock.recv(100) == b"READY=1"


def test_ready_reaches_an_abstract_socket(monkeypatch):
    name = f"lvscare-test-{os.getpid()}"
    with receiver("\0" + name) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("READY=1")
        assert sock.recv(100) == b"READY=1"


def test_without_systemd_nothing_is_sent(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_a_socket_that_is_gone_is_a_warning_not_a_crash(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert notify("READY=1") is False
    assert "cannot tell systemd 'READY=1'" in caplog.text
