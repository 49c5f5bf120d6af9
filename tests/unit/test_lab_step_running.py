"""`sealos_lab.testing.running`'s /proc reader, run on this machine: it names the process of a
step (a program, or the script an interpreter runs) and not a shell or lock holder that only
mentions it; the kill-point tests rely on it to prove where they killed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sealos_lab.testing import _RUNNING


def found(*want: str) -> set[int]:
    out = subprocess.run(
        [sys.executable, "-c", _RUNNING, *want], capture_output=True, text=True, check=True
    ).stdout
    return {int(p) for p in out.split()}


def test_a_script_run_by_its_interpreter_is_found_and_a_shell_naming_it_is_not(tmp_path: Path):
    script = tmp_path / "kubeadm"
    script.write_text("import time\ntime.sleep(60)\n")
    step = subprocess.Popen([sys.executable, str(script), "join", "--config", "f"])
    # a shell whose command line only mentions the step, as sealos's remote `sh -c` does
    shell = subprocess.Popen(["sh", "-c", f"sleep 60; {script} init"])
    # a process that passes it on later, as `flock LOCK kubeadm init` waiting for its lock
    holder = subprocess.Popen(["sh", "-c", "sleep 60", "kubeadm", "init"])
    try:
        for _ in range(50):  # until both have exec'd
            if step.pid in found("kubeadm", "join"):
                break
        assert step.pid in found("kubeadm", "join")
        assert step.pid in found("kubeadm")
        assert step.pid not in found("kubeadm", "init")
        assert shell.pid not in found("kubeadm", "init")
        assert holder.pid not in found("kubeadm", "init")
        assert found("kubeadm", "join", "--config", "f", "extra") == set()
    finally:
        for p in (step, shell, holder):
            p.kill()
            p.wait(10)
