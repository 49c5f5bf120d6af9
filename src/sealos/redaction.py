"""Keeps secrets out of logs and screens: known secret strings and kubeadm's secret patterns.

The rule (a secret is masked, a path or a word that merely contains it is not):

- A registered secret (the SSH password, the key's passphrase, a token just parsed) of any
  length is masked where it stands as a whole token: at the start or end of the text or next to
  whitespace, a quote, `=`, `:`, `,`, `;`, `@`, a bracket, `<`, `>`, `|` or `&` on both sides. So
  with the password `root`, `echo root`, `--password=root`, `"root"` and `user:root@host` are
  masked, while `/root/kube` and `rootfs` stay as they are (masking them would both mangle the
  log and give the password away).
- A registered secret of LONG_SECRET characters or more is masked wherever it appears: it cannot
  occur in other text by chance.
- Known secret shapes are always masked, registered or not: kubeadm's `--token`,
  `--certificate-key`, `--discovery-token`, `--tls-bootstrap-token` values, YAML or JSON fields
  `token`, `certificateKey`, `tlsBootstrapToken`, `password` (quoted keys too), the key
  `upload-certs` prints, bootstrap tokens (`abcdef.0123456789abcdef`) and the body of every PEM
  block (`-----BEGIN ...-----` to `-----END ...-----`; the two marker lines stay).
- The user-info part of any URL (`https://user:pw@host/`) is always masked. A query string is
  masked where it belongs to a registered URL (`url_secrets`: --pkg-url's signed
  `?X-Amz-Signature=...`), not in every URL: kubeadm's `...?timeout=10s` stays readable.
  `redact_url` shows a URL with both masked (the state, plans and messages show it so).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "<redacted>"
LONG_SECRET = 12  # masked anywhere from this length on; shorter ones only as a whole token
QUERY_SECRET = 8  # a query value this long is registered as a secret (signatures, tokens)
_EDGE = r"\s\"'`=:,;@()\[\]{}<>|&?"

_PATTERNS = [
    # kubeadm flags that carry secrets, with a space or '='
    re.compile(
        r"(--(?:token|certificate-key|discovery-token|tls-bootstrap-token)[ =]+)(\"?)[^\s\"\\]+"
    ),
    # YAML or JSON fields that carry secrets
    re.compile(
        r"((?<![\w-])\"?(?:token|certificateKey|tlsBootstrapToken|password)\"?\s*:\s*)(\"?)[^\s\",}]+"
    ),
    # the key `kubeadm init phase upload-certs` prints on its own line
    re.compile(r"(Using certificate key:\s*\n\s*)()[0-9a-f]{64}"),
]
_BOOTSTRAP_TOKEN = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b")
# scheme://USERINFO@ and scheme://host/path?QUERY (up to a fragment, a space or a quote)
_URL_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@?#\"'<>]+@")
_URL_QUERY = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#\"'<>]*\?)[^\s#\"'<>]+")


def redact_url(url: str) -> str:
    """The URL as sealos shows and records it: its user-info and query string masked."""
    return _mask_userinfo(_URL_QUERY.sub(lambda m: f"{m.group(1)}{MASK}", url))


def url_secrets(url: str | None) -> list[str]:
    """The secret parts of a URL, to register with a Redactor: the user-info, its password, the
    query string and each of its values long enough to be a secret (`exp=1` holds none)."""
    if not url:
        return []
    found: list[str] = []
    m = _URL_USERINFO.match(url)
    if m:
        userinfo = url[m.end(1) : m.end() - 1]
        password = userinfo.partition(":")[2]
        found += [userinfo, password, unquote(password)]
    q = _URL_QUERY.match(url)
    if q:
        query = url[q.end(1) : q.end()]
        found.append(query)
        values = [part.partition("=")[2] for part in query.split("&")]
        found += [v for v in values if len(v) >= QUERY_SECRET]
    return [s for s in dict.fromkeys(found) if s]


def _mask_userinfo(text: str) -> str:
    return _URL_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)


_PEM = re.compile(r"(-----BEGIN [A-Z0-9 ]+-----)[\s\S]*?(-----END [A-Z0-9 ]+-----)")


class Redactor:
    """Replaces every registered secret, and anything shaped like a kubeadm secret, by a mask."""

    def __init__(self, *secrets: str | None) -> None:
        self._secrets: set[str] = set()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        """Register more secrets (e.g. a token just parsed from kubeadm's output)."""
        for s in secrets:
            if s:
                self._secrets.add(s)

    def __call__(self, text: str) -> str:
        text = _PEM.sub(lambda m: f"{m.group(1)}\n{MASK}\n{m.group(2)}", text)
        for s in sorted(self._secrets, key=len, reverse=True):
            if len(s) >= LONG_SECRET:
                text = text.replace(s, MASK)
            else:
                whole = re.compile(rf"(?:(?<=[{_EDGE}])|^){re.escape(s)}(?=[{_EDGE}]|$)", re.M)
                text = whole.sub(MASK, text)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
        text = _mask_userinfo(text)
        return _BOOTSTRAP_TOKEN.sub(MASK, text)
