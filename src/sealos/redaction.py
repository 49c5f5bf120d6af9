"""Keeps secrets out of logs and screens: known secret strings and kubeadm's secret patterns."""

from __future__ import annotations

import re

MASK = "<redacted>"
MIN_SECRET_LEN = 3  # masking one- or two-letter strings would garble every log line

_PATTERNS = [
    # kubeadm flags that carry secrets, with a space or '='
    re.compile(
        r"(--(?:token|certificate-key|discovery-token|tls-bootstrap-token)[ =]+)(\"?)[^\s\"\\]+"
    ),
    # YAML fields that carry secrets
    re.compile(r"((?:token|certificateKey|tlsBootstrapToken|password)\s*:\s*)(\"?)[^\s\"]+"),
    # the key `kubeadm init phase upload-certs` prints on its own line
    re.compile(r"(Using certificate key:\s*\n\s*)()[0-9a-f]{64}"),
]
_BOOTSTRAP_TOKEN = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b")


class Redactor:
    """Replaces every registered secret, and anything shaped like a kubeadm secret, by a mask."""

    def __init__(self, *secrets: str | None) -> None:
        self._secrets: set[str] = set()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        """Register more secrets (e.g. a token just parsed from kubeadm's output)."""
        for s in secrets:
            if s and len(s) >= MIN_SECRET_LEN:
                self._secrets.add(s)

    def __call__(self, text: str) -> str:
        for s in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(s, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
        return _BOOTSTRAP_TOKEN.sub(MASK, text)
