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
