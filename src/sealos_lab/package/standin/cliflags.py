"""Command-line flags parsed the way spf13/pflag (cobra) parses them, with pflag's error texts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from .decoder import format_go_duration, parse_go_duration


@dataclass(frozen=True)
class Flag:
    """One flag: kind is bool, string, strings (comma list, repeatable), int or duration."""

    name: str
    kind: str = "string"
    short: str = ""
    default: Any = None


class FlagError(Exception):
    """Bad command line; str() is pflag's message."""


@dataclass
class ParsedFlags:
    """Flag values (defaults filled in), the flags set explicitly, and positional arguments."""

    values: dict[str, Any] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def was_set(self, name: str) -> bool:
        return name in self.changed


def _convert(flag: Flag, raw: str, shown: str) -> Any:
    if flag.kind == "bool":
        lowered = raw.lower()
        if lowered in ("1", "t", "true"):
            return True
        if lowered in ("0", "f", "false"):
            return False
        raise FlagError(
            f'invalid argument "{raw}" for "{shown}" flag: strconv.ParseBool: parsing "{raw}": '
            "invalid syntax"
        )
    if flag.kind == "int":
        try:
            return int(raw, 10)
        except ValueError:
            raise FlagError(
                f'invalid argument "{raw}" for "{shown}" flag: strconv.ParseInt: parsing "{raw}": '
                "invalid syntax"
            ) from None
    if flag.kind == "duration":
        seconds = parse_go_duration(raw)
        if seconds is None:
            raise FlagError(
                f'invalid argument "{raw}" for "{shown}" flag: time: invalid duration "{raw}"'
            )
        return seconds
    if flag.kind == "strings":
        return [item for item in raw.split(",") if item != ""] if raw else []
    return raw


def _default(flag: Flag) -> Any:
    if flag.default is not None:
        return list(flag.default) if isinstance(flag.default, list) else flag.default
    return {"bool": False, "strings": [], "int": 0, "duration": None}.get(flag.kind, "")


def parse_flags(argv: list[str], flags: dict[str, Flag]) -> ParsedFlags:
    """Parse argv (flags may come between positional arguments; "--" ends flags)."""
    by_short = {f.short: f for f in flags.values() if f.short}
    parsed = ParsedFlags(values={name: _default(f) for name, f in flags.items()})
    index = 0

    def take(flag: Flag, value: Optional[str], shown: str) -> None:
        nonlocal index
        if value is None:
            if flag.kind == "bool":
                value = "true"
            elif index < len(argv):
                value = argv[index]
                index += 1
            else:
                raise FlagError(f"flag needs an argument: {shown}")
        # pflag names a flag with a shorthand as "-v, --v" in conversion errors.
        named = f"-{flag.short}, --{flag.name}" if flag.short else f"--{flag.name}"
        converted = _convert(flag, value, named)
        if flag.kind == "strings" and flag.name in parsed.changed:
            parsed.values[flag.name] = [*parsed.values[flag.name], *converted]
        else:
            parsed.values[flag.name] = converted
        if flag.name not in parsed.changed:
            parsed.changed.append(flag.name)

    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            parsed.args.extend(argv[index:])
            break
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            flag = flags.get(name)
            if flag is None:
                raise FlagError(f"unknown flag: --{name}")
            take(flag, value if eq else None, f"--{name}")
        elif arg.startswith("-") and len(arg) > 1:
            letters = arg[1:]
            while letters:
                letter, letters = letters[0], letters[1:]
                flag = by_short.get(letter)
                if flag is None:
                    raise FlagError(f"unknown shorthand flag: '{letter}' in {arg}")
                if flag.kind == "bool":
                    if letters.startswith("="):
                        take(flag, letters[1:], f"-{letter}")
                        letters = ""
                    else:
                        take(flag, "true", f"-{letter}")
                    continue
                value = letters[1:] if letters.startswith("=") else letters
                take(flag, value if letters else None, f"'{letter}' in -{letter}")
                letters = ""
        else:
            parsed.args.append(arg)
    return parsed


def duration_text(seconds: Optional[float]) -> str:
    """A duration flag value printed the Go way."""
    return format_go_duration(seconds or 0.0)
