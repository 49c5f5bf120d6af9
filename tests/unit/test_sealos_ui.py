"""What the user sees: plain lines off a terminal, a live table on one; no secrets added."""

from __future__ import annotations

import io

from rich.console import Console

from sealos.ui import PlainUI, RichUI, make_ui


def drive(ui) -> None:
    ui.phase_start("Distribute the package", ["10.0.0.2", "10.0.0.3"])
    ui.step("10.0.0.2", "uploading kube1.20.15.tar.gz")
    for done in range(0, 101, 10):
        ui.progress("10.0.0.2", done * 1024 * 1024, 100 * 1024 * 1024)
    ui.host_done("10.0.0.2", True, "package uploaded")
    ui.host_done("10.0.0.3", False, "10.0.0.3: `kubeadm join` failed (exit 1): [markup] text")
    ui.phase_end("Distribute the package", False, 1.25)
    ui.phase_skip("Apply the CNI", "skipped (--without-cni)")
    ui.plan({"10.0.0.2": ["kubeadm init"], "10.0.0.3": []})
    ui.table("Summary", ["host", "role"], [["10.0.0.2", "master"]])
    ui.block("kubectl get nodes:", "NAME STATUS\nh1 Ready\n")
    ui.close()


def test_plain_lines_with_progress_at_quarters():
    out = io.StringIO()
    drive(PlainUI(out))
    text = out.getvalue()
    assert "==> Distribute the package (2 hosts)" in text
    progress = [line for line in text.splitlines() if "uploaded " in line and "%" in line]
    assert [p.split("uploaded ")[1].split("%")[0] for p in progress] == [
        "30",
        "50",
        "80",
        "100",
    ], progress
    assert "    10.0.0.3: FAILED - 10.0.0.3: `kubeadm join` failed" in text
    assert (
        "FAILED: Distribute the package (1.2 s)" in text
        or "FAILED: Distribute the package (1.3 s)" in text
    )
    assert "    - nothing (already done)" in text and "  h1 Ready" in text


def test_rich_ui_renders_on_a_terminal_without_eating_brackets():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    drive(RichUI(console))
    text = buf.getvalue()
    assert "Distribute the package" in text and "[markup] text" in text
    assert "Summary" in text and "kubeadm init" in text


def test_make_ui_picks_plain_off_a_terminal():
    assert isinstance(make_ui(io.StringIO()), PlainUI)


HOSTILE = [
    "[preflight] [/etc/kubernetes] is not empty",
    "[link=https://evil.example]click[/link] [bold red]x[/] \\",
    "osc8 \x1b]8;;https://evil.example\x1b\\here\x1b]8;;\x1b\\ \x1b[2J end",
]


def test_rich_ui_shows_host_text_literally_never_as_markup_or_links():
    """A failed host's stderr with `[/etc/kubernetes]` crashed phase_end with a MarkupError."""
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=400, color_system="truecolor")
    ui = RichUI(console)
    for bad in HOSTILE:
        ui.phase_start(f"phase {bad}", ["10.0.0.2", bad])
        ui.step(bad, bad)
        ui.host_done("10.0.0.2", False, f"`kubeadm init` failed (exit 1): {bad}")
        ui.host_done(bad, False, bad)
        ui.phase_end(f"phase {bad}", False, 1.0)
        ui.phase_skip(bad, bad)
        ui.info(bad)
        ui.warn(bad)
        ui.error(bad)
        ui.plan({bad: [bad]}, action="init")
        ui.table(bad, [bad], [[bad]])
        ui.block(bad, bad)
    ui.close()
    text = buf.getvalue()
    assert text.count("[preflight] [/etc/kubernetes] is not empty") >= 10
    assert text.count("[link=https://evil.example]click[/link] [bold red]x[/] \\") >= 10
    assert "\x1b]8;" not in text  # no OSC 8 hyperlink reaches the terminal
    assert "\x1b[2J" not in text
    assert "osc8 \ufffd]8;;https://evil.example" in text
