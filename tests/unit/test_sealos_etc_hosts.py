"""/etc/hosts edits, run by a real sh on a scratch copy: idempotent, marker-only removal."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sealos.etc_hosts import MARKER, entry, remove_entry_command, resolves_to, set_entry_command

ORIGINAL = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n10.0.0.9 other.example\n"


def sh(command: str) -> None:
    subprocess.run(["sh", "-c", command], check=True)


def test_set_twice_gives_one_line_and_keeps_the_rest(tmp_path: Path):
    hosts = tmp_path / "hosts"
    hosts.write_text(ORIGINAL)
    sh(set_entry_command("10.103.97.2", "apiserver.cluster.local", str(hosts)))
    sh(set_entry_command("10.103.97.2", "apiserver.cluster.local", str(hosts)))
    text = hosts.read_text()
    assert text == ORIGINAL + entry("10.103.97.2", "apiserver.cluster.local") + "\n"


def test_repointing_replaces_our_line_only(tmp_path: Path):
    hosts = tmp_path / "hosts"
    hosts.write_text(ORIGINAL)
    sh(set_entry_command("10.0.0.2", "apiserver.cluster.local", str(hosts)))
    sh(set_entry_command("10.0.0.3", "apiserver.cluster.local", str(hosts)))
    lines = hosts.read_text().splitlines()
    assert [line for line in lines if MARKER in line] == [
        entry("10.0.0.3", "apiserver.cluster.local")
    ]
    assert resolves_to(lines, "apiserver.cluster.local") == [("10.0.0.3", True)]


def test_remove_leaves_the_file_as_it_was(tmp_path: Path):
    hosts = tmp_path / "hosts"
    hosts.write_text(ORIGINAL)
    inode = hosts.stat().st_ino
    sh(set_entry_command("10.0.0.2", "apiserver.cluster.local", str(hosts)))
    sh(remove_entry_command(str(hosts)))
    sh(remove_entry_command(str(hosts)))  # already clean: still fine
    assert hosts.read_text() == ORIGINAL
    assert hosts.stat().st_ino == inode  # edited in place: bind-mounted /etc/hosts keeps working


def test_foreign_lines_are_told_apart():
    lines = [
        "1.2.3.4 apiserver.cluster.local",
        "5.6.7.8 apiserver.cluster.local.example",
        "# 9.9.9.9 apiserver",
    ]
    assert resolves_to(lines, "apiserver.cluster.local") == [("1.2.3.4", False)]


def test_rewrite_is_a_rename_beside_the_file_keeping_mode(tmp_path: Path):
    hosts = tmp_path / "hosts"
    hosts.write_text(ORIGINAL)
    hosts.chmod(0o640)
    before = hosts.stat().st_ino
    sh(set_entry_command("10.0.0.2", "apiserver.cluster.local", str(hosts)))
    assert hosts.stat().st_ino != before  # replaced by a rename, not rewritten in place
    assert hosts.stat().st_mode & 0o777 == 0o640
    sh(remove_entry_command(str(hosts)))
    assert hosts.read_text() == ORIGINAL and hosts.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts"]  # no temp file left


def test_a_writer_killed_mid_write_leaves_the_old_file(tmp_path: Path):
    """`cat tmp > /etc/hosts` truncated the file before cat ran: killed there, it stayed empty.
    Here `cat` and `mv` kill the shell that runs the edit the moment they start."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("cat", "mv"):
        (bin_dir / tool).write_text("#!/bin/sh\nkill -9 $PPID\nexit 1\n")
        (bin_dir / tool).chmod(0o755)
    hosts = tmp_path / "hosts"
    for command in (
        set_entry_command("10.0.0.2", "apiserver.cluster.local", str(hosts)),
        remove_entry_command(str(hosts)),
    ):
        hosts.write_text(ORIGINAL + entry("10.0.0.1", "apiserver.cluster.local") + "\n")
        old = hosts.read_text()
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
        done = subprocess.run(["sh", "-c", command], env=env, check=False)
        assert done.returncode == -9
        assert hosts.read_text() == old
