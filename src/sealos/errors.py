"""Errors a user can cause or meet: each is one clear sentence naming the host and the fix."""

from __future__ import annotations


class SealosError(Exception):
    """Base of every error sealos reports to the user without a traceback."""


class SpecError(SealosError):
    """The command line or cluster.yaml is wrong; the message says which value and how to fix it."""


class HostError(SealosError):
    """Something went wrong on one host (connect, auth, host key, command, transfer)."""

    def __init__(self, host: str, message: str, kind: str = "error") -> None:
        super().__init__(f"{host}: {message}")
        self.host = host
        self.kind = kind


class CommandError(HostError):
    """A remote command exited non-zero; carries the (redacted) command and its error output."""

    def __init__(
        self, host: str, command: str, exit_status: int | None, stderr: str, stdout: str = ""
    ) -> None:
        self.command = command
        self.exit_status = exit_status
        self.stderr = stderr
        self.stdout = stdout
        tail = _tail(stderr or stdout)
        status = "timed out" if exit_status is None else f"failed (exit {exit_status})"
        message = f"`{_shorten(command)}` {status}"
        if tail:
            message += f": {tail}"
        super().__init__(host, message, kind="command")


class ValidationFailed(SealosError):
    """Validation found problems before anything was changed; all of them are listed at once."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s) found, nothing was changed")
        self.problems = problems


def _tail(text: str, lines: int = 6) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(line.strip() for line in kept)


def _shorten(command: str, limit: int = 160) -> str:
    one_line = " ".join(command.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
