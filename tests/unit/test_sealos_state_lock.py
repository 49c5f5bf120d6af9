"""The state is locked for a whole init/join/clean (a second run is refused, naming the first),
and saved with fsync of the file and its folder (issue 11). The concurrent runs are real
`sealos` processes; the first one waits on a silent TCP port on 127.0.0.1 that this test opens."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from sealos.errors import SealosError
from sealos.state import LOCK_FILE, ClusterState, StateStore


def tiny_package(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        data = b"#!/bin/sh\n"
        info = tarfile.TarInfo("kube/bin/kubeadm")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def sealos(home: Path, *args: str, timeout: float = 60) -> subprocess.Popen:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "SEALOS_HOME": str(home / ".sealos"),
        "SEALOS_PASSWORD": "not-used",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "sealos", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_second_run_is_refused_naming_the_first_while_it_holds_the_state(tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete, nothing ever answers: the SSH login waits
    port = silent.getsockname()[1]
    pkg = tiny_package(tmp_path / "kube1.20.15.tar.gz")
    host = f"127.0.0.1:{port}"
    first = sealos(tmp_path, "init", "--master", host, "--version", "v1.20.15", "--pkg", str(pkg))
    lock = tmp_path / ".sealos" / LOCK_FILE
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and f"pid {first.pid}" not in _read(lock):
            assert first.poll() is None, first.communicate()
            time.sleep(0.1)
        assert f"pid {first.pid}: sealos init --master {host}" in _read(lock)
        for args in (
            ["init", "--master", host, "--version", "v1.20.15", "--pkg", str(pkg)],
            ["join", "--node", "127.0.0.1:1"],
            ["clean", "--all", "-y"],
        ):
            second = sealos(tmp_path, *args)
            out, err = second.communicate(timeout=60)
            assert second.returncode == 1, (args, out, err)
            assert "another sealos run holds the cluster state" in err, (args, err)
            assert f"pid {first.pid}: sealos init --master {host}" in err, (args, err)
            assert "Traceback" not in err
        assert first.poll() is None  # the first run was not disturbed
    finally:
        first.terminate()
        first.communicate(timeout=30)
        silent.close()
    # once the first run is gone, the lock is free again (this run fails for its own reason)
    after = sealos(tmp_path, "clean", "--all", "-y")
    out, err = after.communicate(timeout=60)
    assert "another sealos run" not in err and "no cluster is recorded" in err, err


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def test_the_lock_in_one_process_names_its_holder_and_is_released(tmp_path):
    a, b = StateStore(tmp_path), StateStore(tmp_path)
    a.lock("sealos join --node 10.0.0.9")
    a.lock("again")  # idempotent
    with pytest.raises(SealosError, match=r"pid \d+: sealos join --node 10.0.0.9, since"):
        b.lock("sealos clean --all")
    a.unlock()
    b.lock("sealos clean --all")
    b.unlock()


def test_save_fsyncs_the_file_and_its_folder(tmp_path, monkeypatch):
    synced: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    store = StateStore(tmp_path / "home")
    store.save(ClusterState(status="ready"))
    tmp_name = f".config.yaml.{os.getpid()}"
    assert synced == [str(tmp_path / "home" / tmp_name), str(tmp_path / "home")]
    synced.clear()
    assert store.remove()
    assert synced == [str(tmp_path / "home")]
