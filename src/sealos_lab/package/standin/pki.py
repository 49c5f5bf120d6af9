"""Certificates (openssl CLI), kubeconfigs, bootstrap tokens, JWS and the sealed kubeadm-certs.

Lab hosts have the openssl CLI but not the `cryptography` module, so keys and certificates are
made by running openssl; hashes, HMACs and the DER walk for the CA pin use the standard library.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import shutil
import string
import subprocess
import tempfile
from pathlib import Path
from typing import Any, NamedTuple, Optional

import yaml

from .hostenv import write_private

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
TOKEN_ID_RE = re.compile(r"^[a-z0-9]{6}$")
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits
KEY_ALGORITHMS = {
    "RSA-2048": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    "RSA-3072": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
    "RSA-4096": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"],
    "ECDSA-P256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "ECDSA-P384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
}


class PkiError(Exception):
    """openssl failed, or a certificate/key/blob is not what it should be."""


def _openssl(*args: str, data: Optional[bytes] = None) -> bytes:
    result = subprocess.run(["openssl", *args], input=data, capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise PkiError(f"openssl {args[0]}: {message[-1] if message else 'failed'}")
    return result.stdout


def new_keys(requests: list[tuple[Path, str]]) -> None:
    """Generate private keys (mode 0600), several openssl processes at a time (RSA is slow)."""
    running: list[tuple[subprocess.Popen[bytes], Path]] = []
    for path, algorithm in requests:
        if algorithm not in KEY_ALGORITHMS:
            raise PkiError(f"unknown encryptionAlgorithm {algorithm!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.new")
        tmp.unlink(missing_ok=True)
        tmp.touch(mode=0o600)
        cmd = ["openssl", "genpkey", *KEY_ALGORITHMS[algorithm], "-out", str(tmp)]
        running.append((subprocess.Popen(cmd, stderr=subprocess.PIPE), path))
    for process, path in running:
        _out, err = process.communicate()
        tmp = path.with_name(f".{path.name}.new")
        if process.returncode != 0:
            raise PkiError(f"openssl genpkey: {err.decode(errors='replace').strip()}")
        tmp.chmod(0o600)
        tmp.replace(path)


def make_ca(key: Path, cert: Path, common_name: str, days: int = 3650) -> None:
    """A self-signed CA certificate for an existing key."""
    pem = _openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        str(key),
        "-subj",
        f"/CN={common_name}",
        "-days",
        str(days),
        "-sha256",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
        "-addext",
        "subjectKeyIdentifier=hash",
    )
    write_private(cert, pem, 0o644)


def _subject(common_name: str, organizations: list[str]) -> str:
    return "".join(f"/O={org}" for org in organizations) + f"/CN={common_name}"


def make_csr(key: Path, common_name: str, organizations: list[str]) -> str:
    """A PEM certificate signing request for an existing key."""
    return _openssl(
        "req", "-new", "-key", str(key), "-subj", _subject(common_name, organizations)
    ).decode()


def sign_csr(
    ca_cert: Path,
    ca_key: Path,
    csr_pem: str,
    days: int = 365,
    server: bool = False,
    client: bool = True,
    dns_names: Optional[list[str]] = None,
    ip_addresses: Optional[list[str]] = None,
) -> str:
    """Sign a CSR with the CA; returns the PEM certificate."""
    usages = (["serverAuth"] if server else []) + (["clientAuth"] if client else [])
    lines = [
        "[ext]",
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={','.join(usages)}",
        "authorityKeyIdentifier=keyid",
    ]
    sans = [f"DNS:{name}" for name in dns_names or []] + [f"IP:{ip}" for ip in ip_addresses or []]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    with tempfile.TemporaryDirectory(prefix="sealos-standin-") as tmp:
        csr_path = Path(tmp) / "req.csr"
        ext_path = Path(tmp) / "ext.cnf"
        csr_path.write_text(csr_pem)
        ext_path.write_text("\n".join(lines) + "\n")
        return _openssl(
            "x509",
            "-req",
            "-in",
            str(csr_path),
            "-CA",
            str(ca_cert),
            "-CAkey",
            str(ca_key),
            "-set_serial",
            "0x" + secrets.token_hex(16),
            "-days",
            str(days),
            "-sha256",
            "-extfile",
            str(ext_path),
            "-extensions",
            "ext",
        ).decode()


def issue_cert(
    ca_cert: Path,
    ca_key: Path,
    key: Path,
    cert: Path,
    common_name: str,
    organizations: Optional[list[str]] = None,
    server: bool = False,
    client: bool = True,
    dns_names: Optional[list[str]] = None,
    ip_addresses: Optional[list[str]] = None,
) -> None:
    """Issue a certificate for an existing key and write it next to the key."""
    csr = make_csr(key, common_name, organizations or [])
    pem = sign_csr(
        ca_cert,
        ca_key,
        csr,
        server=server,
        client=client,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
    )
    write_private(cert, pem, 0o644)


def public_key_pem(key: Path) -> str:
    """The PEM public key of a private key (sa.pub from sa.key)."""
    return _openssl("pkey", "-in", str(key), "-pubout").decode()


def csr_subject(csr_pem: str) -> tuple[str, list[str]]:
    """(CN, [O...]) of a PEM CSR."""
    text = _openssl("req", "-noout", "-subject", "-nameopt", "RFC2253", data=csr_pem.encode())
    return _parse_rfc2253(text.decode().split("=", 1)[1].strip())


def cert_subject(cert_pem: str) -> tuple[str, list[str]]:
    """(CN, [O...]) of a PEM certificate."""
    text = _openssl("x509", "-noout", "-subject", "-nameopt", "RFC2253", data=cert_pem.encode())
    return _parse_rfc2253(text.decode().split("=", 1)[1].strip())


def _parse_rfc2253(text: str) -> tuple[str, list[str]]:
    common_name = ""
    orgs: list[str] = []
    for part in re.split(r"(?<!\\),", text):
        key, _, value = part.partition("=")
        if key.strip() == "CN":
            common_name = value.replace("\\", "")
        elif key.strip() == "O":
            orgs.append(value.replace("\\", ""))
    return common_name, orgs


def cert_sans(cert_pem: str) -> list[str]:
    """Subject alternative names of a PEM certificate, as Go prints them (names, then IPs)."""
    try:
        text = _openssl("x509", "-noout", "-ext", "subjectAltName", data=cert_pem.encode())
    except PkiError:
        return []
    names: list[str] = []
    ips: list[str] = []
    for item in text.decode().split("\n", 1)[-1].split(","):
        item = item.strip()
        if item.startswith("DNS:"):
            names.append(item[4:])
        elif item.startswith("IP Address:"):
            ips.append(item[11:])
    return names + ips


def pem_to_der(pem: str) -> bytes:
    """DER bytes of the first PEM block."""
    body = re.search(r"-----BEGIN [^-]+-----(.*?)-----END", pem, re.S)
    if not body:
        raise PkiError("no PEM data found")
    return base64.b64decode("".join(body.group(1).split()))


def _der_element(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, element end) of the DER element at pos."""
    tag = data[pos]
    length = data[pos + 1]
    start = pos + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    return tag, start, start + length


def spki_pin(cert_pem: str) -> str:
    """The "sha256:<hex>" pin of the certificate's SubjectPublicKeyInfo (kubeadm's pubkeypin)."""
    der = pem_to_der(cert_pem)
    _tag, cert_start, _cert_end = _der_element(der, 0)
    _tag, tbs_start, tbs_end = _der_element(der, cert_start)
    fields: list[tuple[int, int, int]] = []
    pos = tbs_start
    while pos < tbs_end:
        tag, _start, end = _der_element(der, pos)
        fields.append((tag, pos, end))
        pos = end
    spki_index = 6 if fields[0][0] == 0xA0 else 5
    _tag, begin, end = fields[spki_index]
    return "sha256:" + hashlib.sha256(der[begin:end]).hexdigest()


def new_bootstrap_token() -> str:
    """A random bootstrap token "[a-z0-9]{6}.[a-z0-9]{16}"."""
    pick = lambda n: "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(n))  # noqa: E731
    return f"{pick(6)}.{pick(16)}"


def new_certificate_key() -> str:
    """32 random bytes as 64 hex characters, like `kubeadm certs certificate-key`."""
    return secrets.token_hex(32)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws_detached(content: str, token_id: str, token_secret: str) -> str:
    """Detached HS256 JWS of content keyed by the token secret (cluster-info's jws-kubeconfig-*)."""
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    payload = _b64url(content.encode())
    mac = hmac.new(token_secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    return f"{header}..{_b64url(mac.digest())}"


def jws_valid(detached: str, content: str, token_id: str, token_secret: str) -> bool:
    """Whether a detached JWS signs content with this token."""
    return hmac.compare_digest(detached, jws_detached(content, token_id, token_secret))


def _stream(key: bytes, nonce: bytes, length: int) -> bytes:
    blocks = []
    for counter in range((length + 31) // 32):
        blocks.append(hmac.new(key, nonce + counter.to_bytes(8, "big"), hashlib.sha256).digest())
    return b"".join(blocks)[:length]


def _split_key(certificate_key: str) -> tuple[bytes, bytes]:
    try:
        raw = bytes.fromhex(certificate_key)
    except ValueError as exc:
        raise PkiError(f"error decoding certificate key: encoding/hex: {exc}") from None
    if len(raw) != 32:
        raise PkiError(f"error decoding certificate key: crypto/aes: invalid key size {len(raw)}")
    enc = hmac.new(raw, b"sealos-lab kubeadm-certs enc", hashlib.sha256).digest()
    mac = hmac.new(raw, b"sealos-lab kubeadm-certs mac", hashlib.sha256).digest()
    return enc, mac


def seal(certificate_key: str, plaintext: bytes) -> str:
    """Encrypt-then-MAC (HMAC-SHA256 stream + tag) keyed by the certificate key; base64 text.

    Real kubeadm uses AES-GCM; without the cryptography module an HMAC construction gives the same
    property the lab needs: only a holder of the certificate key can read or forge the bundle.
    """
    enc, mac = _split_key(certificate_key)
    nonce = secrets.token_bytes(16)
    cipher = bytes(a ^ b for a, b in zip(plaintext, _stream(enc, nonce, len(plaintext))))
    tag = hmac.new(mac, nonce + cipher, hashlib.sha256).digest()
    return base64.b64encode(nonce + tag + cipher).decode()


def unseal(certificate_key: str, blob: str) -> bytes:
    """Decrypt a sealed bundle; PkiError "cipher: message authentication failed" on a wrong key."""
    enc, mac = _split_key(certificate_key)
    raw = base64.b64decode(blob)
    nonce, tag, cipher = raw[:16], raw[16:48], raw[48:]
    expected = hmac.new(mac, nonce + cipher, hashlib.sha256).digest()
    if not hmac.compare_digest(tag, expected):
        raise PkiError("error decoding certs: cipher: message authentication failed")
    return bytes(a ^ b for a, b in zip(cipher, _stream(enc, nonce, len(cipher))))


class Kubeconfig(NamedTuple):
    """What a client needs from a kubeconfig's current context."""

    server: str
    ca_pem: Optional[str]
    insecure: bool
    cert_pem: Optional[str]
    key_pem: Optional[str]
    token: Optional[str]
    cluster_name: str


def kubeconfig_document(
    server: str,
    ca_pem: str,
    user: str,
    cluster: str = "kubernetes",
    context: Optional[str] = None,
    cert_pem: Optional[str] = None,
    key_pem: Optional[str] = None,
    cert_file: Optional[str] = None,
    key_file: Optional[str] = None,
    token: Optional[str] = None,
) -> str:
    """A kubeconfig laid out as kubeadm writes them."""
    auth: dict[str, Any] = {}
    if cert_pem:
        auth["client-certificate-data"] = base64.b64encode(cert_pem.encode()).decode()
    if key_pem:
        auth["client-key-data"] = base64.b64encode(key_pem.encode()).decode()
    if cert_file:
        auth["client-certificate"] = cert_file
    if key_file:
        auth["client-key"] = key_file
    if token:
        auth["token"] = token
    context_name = context or f"{user}@{cluster}"
    document = {
        "apiVersion": "v1",
        "clusters": [
            {
                "cluster": {
                    "certificate-authority-data": base64.b64encode(ca_pem.encode()).decode(),
                    "server": server,
                },
                "name": cluster,
            }
        ],
        "contexts": [{"context": {"cluster": cluster, "user": user}, "name": context_name}],
        "current-context": context_name,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": user, "user": auth}],
    }
    return yaml.safe_dump(document, default_flow_style=False, sort_keys=False)


def _read_data_or_file(entry: dict[str, Any], data_key: str, file_key: str, base: Path) -> Any:
    if entry.get(data_key):
        return base64.b64decode(entry[data_key]).decode()
    if entry.get(file_key):
        path = Path(entry[file_key])
        if not path.is_absolute():
            path = base / path
        return path.read_text()
    return None


def parse_kubeconfig(text: str, base: Path) -> Kubeconfig:
    """The current context's server and credentials; PkiError when the file is unusable."""
    try:
        doc = yaml.safe_load(text) or {}
        current = doc.get("current-context") or ""
        contexts = {c["name"]: c.get("context", {}) for c in doc.get("contexts") or []}
        context = contexts.get(current) or (next(iter(contexts.values())) if contexts else {})
        clusters = {c["name"]: c.get("cluster", {}) for c in doc.get("clusters") or []}
        users = {u["name"]: u.get("user", {}) or {} for u in doc.get("users") or []}
        cluster_name = context.get("cluster") or (next(iter(clusters)) if clusters else "")
        cluster = clusters.get(cluster_name, {})
        user = users.get(context.get("user", ""), {})
        ca = _read_data_or_file(
            cluster, "certificate-authority-data", "certificate-authority", base
        )
        return Kubeconfig(
            server=str(cluster.get("server") or ""),
            ca_pem=ca,
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
            cert_pem=_read_data_or_file(
                user, "client-certificate-data", "client-certificate", base
            ),
            key_pem=_read_data_or_file(user, "client-key-data", "client-key", base),
            token=user.get("token"),
            cluster_name=str(cluster_name),
        )
    except (yaml.YAMLError, AttributeError, KeyError, TypeError, OSError, ValueError) as exc:
        raise PkiError(f"invalid kubeconfig: {exc}") from None


def load_kubeconfig(path: Path) -> Kubeconfig:
    """parse_kubeconfig of a file."""
    return parse_kubeconfig(path.read_text(), path.parent)


def copy_private(src: Path, dst: Path) -> None:
    """Copy a key or certificate keeping the key private."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    dst.chmod(0o600 if src.suffix == ".key" else 0o644)
