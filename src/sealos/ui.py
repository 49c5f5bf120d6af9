"""What the user sees: one line per phase, a live row per host with its current step and upload
progress (rich, on a terminal), or plain lines when stdout is not a terminal.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

PROGRESS_STEPS = 4  # plain output prints upload progress at 25 %, 50 %, 75 %, 100 %


@dataclass
class _Row:
    step: str = "waiting"
    done: int = 0
    total: int = 0
    state: str = "running"  # running | ok | failed


class UI:
    """The interface phases talk to; PlainUI and RichUI implement it."""

    def phase_start(self, title: str, hosts: list[str]) -> None:
        """A phase begins on these hosts."""

    def phase_end(self, title: str, ok: bool, seconds: float) -> None:
        """A phase ended."""

    def phase_skip(self, title: str, reason: str) -> None:
        """A phase had nothing to do."""

    def step(self, host: str, text: str) -> None:
        """A host moved on to a new step."""

    def progress(self, host: str, done: int, total: int) -> None:
        """Bytes uploaded so far to a host."""

    def host_done(self, host: str, ok: bool, text: str) -> None:
        """A host finished the phase."""

    def info(self, text: str) -> None:
        """A line of information."""

    def warn(self, text: str) -> None:
        """Something worth knowing that does not stop the run."""

    def error(self, text: str) -> None:
        """Something that stops the run."""

    def plan(self, per_host: dict[str, list[str]], action: str = "init") -> None:
        """Dry run: what `action` would do on each host."""

    def table(self, title: str, columns: list[str], rows: list[list[str]]) -> None:
        """A table, e.g. the summary."""

    def block(self, title: str, text: str) -> None:
        """A block of text, e.g. `kubectl get nodes`."""

    def close(self) -> None:
        """Stop live output."""


class PlainUI(UI):
    """Plain lines, for logs and pipes."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self._reported: dict[str, int] = {}

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def phase_start(self, title: str, hosts: list[str]) -> None:
        self._print(f"==> {title}" + (f" ({_count(hosts)})" if hosts else ""))

    def phase_end(self, title: str, ok: bool, seconds: float) -> None:
        self._print(f"    {'done' if ok else 'FAILED'}: {title} ({seconds:.1f} s)")

    def phase_skip(self, title: str, reason: str) -> None:
        self._print(f"==> {title}: {reason}")

    def step(self, host: str, text: str) -> None:
        self._print(f"    {host}: {text}")

    def progress(self, host: str, done: int, total: int) -> None:
        if total <= 0:
            return
        quarter = int(done * PROGRESS_STEPS / total)
        if quarter > self._reported.get(host, 0):
            self._reported[host] = quarter
            self._print(
                f"    {host}: uploaded {done * 100 // total}% ({_size(done)} of {_size(total)})"
            )
        if done >= total:
            self._reported.pop(host, None)

    def host_done(self, host: str, ok: bool, text: str) -> None:
        self._print(f"    {host}: {'ok' if ok else 'FAILED'}{' - ' + text if text else ''}")

    def info(self, text: str) -> None:
        self._print(text)

    def warn(self, text: str) -> None:
        self._print(f"warning: {text}")

    def error(self, text: str) -> None:
        self._print(f"error: {text}")

    def plan(self, per_host: dict[str, list[str]], action: str = "init") -> None:
        self._print(f"Dry run: nothing was changed. Per host, this is what {action} would do:")
        for host, lines in per_host.items():
            self._print(f"  {host}:")
            for line in lines or ["nothing (already done)"]:
                self._print(f"    - {line}")

    def table(self, title: str, columns: list[str], rows: list[list[str]]) -> None:
        widths = [
            max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
            for i, c in enumerate(columns)
        ]
        self._print(title)
        self._print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths)))
        for r in rows:
            self._print("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)))

    def block(self, title: str, text: str) -> None:
        self._print(title)
        for line in text.rstrip().splitlines():
            self._print(f"  {line}")


class RichUI(UI):
    """A live table per phase on a terminal, then one summary line per phase."""

    def __init__(self, console: Optional[Console] = None) -> None:
        from rich.console import Console

        self.console = console or Console()
        self._rows: dict[str, _Row] = {}
        self._title = ""
        self._live: Optional[object] = None
        self._started = 0.0

    def _render(self) -> Table:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        table = Table(box=None, show_header=False, padding=(0, 1))
        table.add_column("host", style="bold")
        table.add_column("step")
        table.add_column("progress", width=34)
        for host, row in self._rows.items():
            mark = {"running": ("…", "yellow"), "ok": ("✓", "green"), "failed": ("✗", "red")}[
                row.state
            ]
            bar = Table.grid()
            if row.total and row.state == "running":
                bar.add_row(
                    ProgressBar(total=row.total, completed=row.done, width=20),
                    f" {row.done * 100 // row.total}% of {_size(row.total)}",
                )
            table.add_row(_text(mark, (" " + host, "")), _text(row.step), bar)
        return table

    def phase_start(self, title: str, hosts: list[str]) -> None:
        from rich.live import Live

        self._stop_live()
        self._title = title
        self._started = time.monotonic()
        self._rows = {h: _Row() for h in hosts}
        self.console.print(
            _text(
                ("==>", "bold blue"),
                " ",
                (title, "bold"),
                f" ({_count(hosts)})" if hosts else "",
            )
        )
        live = Live(
            get_renderable=self._render, console=self.console, refresh_per_second=8, transient=True
        )
        live.start()
        self._live = live

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()  # type: ignore[attr-defined]
            self._live = None

    def phase_end(self, title: str, ok: bool, seconds: float) -> None:
        self._stop_live()
        for host, row in self._rows.items():
            if row.state == "failed":
                self.console.print(_text("    ", (f"✗ {host}", "red"), ": ", row.step))
        mark = ("✓", "green") if ok else ("✗", "red")
        self.console.print(_text("    ", mark, " ", title, " ", (f"({seconds:.1f} s)", "dim")))
        self._rows = {}

    def phase_skip(self, title: str, reason: str) -> None:
        self._stop_live()
        self.console.print(_text(("==>", "bold blue"), " ", (title, "bold"), ": ", (reason, "dim")))

    def step(self, host: str, text: str) -> None:
        row = self._rows.setdefault(host, _Row())
        row.step, row.done, row.total = text, 0, 0

    def progress(self, host: str, done: int, total: int) -> None:
        row = self._rows.setdefault(host, _Row())
        row.done, row.total = done, total

    def host_done(self, host: str, ok: bool, text: str) -> None:
        row = self._rows.setdefault(host, _Row())
        row.state = "ok" if ok else "failed"
        row.step = text or ("done" if ok else "failed")
        row.total = 0

    def info(self, text: str) -> None:
        self.console.print(_text(text))

    def warn(self, text: str) -> None:
        self.console.print(_text(("warning:", "yellow"), " ", text))

    def error(self, text: str) -> None:
        self.console.print(_text(("error:", "red"), " ", text))

    def plan(self, per_host: dict[str, list[str]], action: str = "init") -> None:
        self._stop_live()
        self.console.print(
            _text(
                ("Dry run", "bold"),
                f": nothing was changed. Per host, this is what {action} would do:",
            )
        )
        for host, lines in per_host.items():
            self.console.print(_text("  ", (host, "bold")))
            for line in lines or ["nothing (already done)"]:
                self.console.print(_text("    - ", line))

    def table(self, title: str, columns: list[str], rows: list[list[str]]) -> None:
        from rich.table import Table

        self._stop_live()
        t = Table(title=_text(title), title_justify="left")
        for c in columns:
            t.add_column(_text(c))
        for r in rows:
            t.add_row(*[_text(v) for v in r])
        self.console.print(t)

    def block(self, title: str, text: str) -> None:
        self._stop_live()
        self.console.print(_text((title, "bold")))
        self.console.print(_text(text.rstrip()))

    def close(self) -> None:
        self._stop_live()


def make_ui(out: TextIO | None = None) -> UI:
    """RichUI on a terminal, PlainUI otherwise."""
    stream = out or sys.stdout
    if stream.isatty():
        return RichUI()
    return PlainUI(stream)


# C0 controls but tab and newline, DEL and C1 controls: a host's text could carry terminal escape
# sequences (colours, cursor moves, OSC 8 links); they are shown as U+FFFD instead.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _text(*parts: str | tuple[str, str]) -> Text:
    """A rich Text from plain strings and (string, style) pairs. Nothing is parsed as markup or
    highlighted: every string may come from a host (a step, an error, stderr), and host text is
    shown literally, never as markup, link or escape sequence."""
    from rich.text import Text

    text = Text()
    for part in parts:
        value, style = (part, "") if isinstance(part, str) else part
        text.append(_CONTROLS.sub("\ufffd", value), style=style)
    return text


def _count(hosts: list[str]) -> str:
    return f"{len(hosts)} host" + ("" if len(hosts) == 1 else "s")


def _size(n: int) -> str:
    if n >= 1024**2:
        return f"{n / 1024**2:.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.0f} KiB"
    return f"{n} B"
