"""Idempotent edits of /etc/hosts: sealos' own line carries a marker comment, so `clean` removes
exactly that line and a re-run never adds a second one.
"""

from __future__ import annotations

from sealos.remote_paths import HOSTS_FILE, q

MARKER = "# managed by sealos"


def entry(ip: str, name: str) -> str:
    """The /etc/hosts line sealos writes for the apiserver name."""
    return f"{ip} {name} {MARKER}"


def set_entry_command(ip: str, name: str, path: str = HOSTS_FILE) -> str:
    """Shell that makes `name` resolve to `ip` through our one marked line (no-op if so already)."""
    line = entry(ip, name)
    return (
        f"f={q(path)}; line={q(line)}; "
        'if grep -qxF -- "$line" "$f" && '
        f'[ "$(grep -cF -- {q(MARKER)} "$f")" = 1 ]; then exit 0; fi; '
        + _replace(
            f'{{ grep -vF -- {q(MARKER)} "$f" || true; }} > "$tmp" && '
            'printf \'%s\\n\' "$line" >> "$tmp"'
        )
    )


def remove_entry_command(path: str = HOSTS_FILE) -> str:
    """Shell that removes sealos' marked line(s) and nothing else."""
    return f'f={q(path)}; grep -qF -- {q(MARKER)} "$f" || exit 0; ' + _replace(
        f'{{ grep -vF -- {q(MARKER)} "$f" || true; }} > "$tmp"'
    )


def _replace(write_tmp: str) -> str:
    """Shell that replaces "$f" in one step: `write_tmp` fills "$tmp", a file beside "$f" with its
    mode and owner, then a rename puts it in place, so a writer killed at any point leaves either
    the old file or the new one, never a truncated one. Where the rename is refused (/etc/hosts
    bind-mounted into a container: EBUSY), the complete temp file is copied over it instead."""
    return (
        'tmp=$(mktemp "$f.sealos.XXXXXX") || exit 1; '
        f"{write_tmp} && "
        'chmod "$(stat -c %a "$f")" "$tmp" && chown "$(stat -c %u:%g "$f")" "$tmp" && '
        '{ mv -f "$tmp" "$f" 2>/dev/null || cat "$tmp" > "$f"; }; rc=$?; rm -f "$tmp"; exit $rc'
    )


def resolves_to(lines: list[str], name: str) -> list[tuple[str, bool]]:
    """For /etc/hosts lines, the addresses that map `name`, each with whether the line is ours."""
    found: list[tuple[str, bool]] = []
    for raw in lines:
        ours = raw.rstrip().endswith(MARKER)
        fields = raw.split("#", 1)[0].split()
        if len(fields) >= 2 and name in fields[1:]:
            found.append((fields[0], ours))
    return found
