"""Package authenticity and URL credentials (issue 11, Trust): plain http needs --pkg-sha256,
--pkg-sha256 is honoured with --pkg, a built package is checked against its kube/manifest.json
(once, cached), and credentials in --pkg-url stay out of the state, the log, the plan, messages
and curl's/wget's argv."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.server
import io
import os
import subprocess
import tarfile
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from sealos import package as package_mod
from sealos import spec as spec_mod
from sealos.addresses import parse_hosts
from sealos.context import ClusterHost, Context
from sealos.errors import HostError, SpecError
from sealos.facts import HostFacts
from sealos.kubeversion import KubeVersion
from sealos.logfile import CommandLog
from sealos.packaging import manifest
from sealos.phases.distribute_package import DistributePackage, fetch_command, fetch_input
from sealos.phases.package_checksum import checksum_url
from sealos.redaction import MASK, Redactor, redact_url, url_secrets
from sealos.runner import read_package
from sealos.ssh import CommandResult, SSHConnection
from sealos.state import ClusterState, Member, StateStore
from sealos.ui import PlainUI
from sealos.validate import spec_problems

PASSWORD = "pa55-w0rd"
SIGNATURE = "c2lnbmF0dXJlLW9mLXRoZS11cmw"
URL = f"https://bob:{PASSWORD}@10.0.0.1:8443/pkgs/kube1.20.15.tar.gz?X-Sig={SIGNATURE}&exp=1"


def make_spec(tmp_path: Path, **kw) -> spec_mod.ClusterSpec:
    base = dict(
        masters=parse_hosts(["10.0.0.2"]),
        nodes=parse_hosts(["10.0.0.5"]),
        version=KubeVersion.parse("v1.20.15"),
    )
    base.update(kw)
    return spec_mod.ClusterSpec(**base)


def make_ctx(tmp_path: Path, spec: spec_mod.ClusterSpec, dry_run: bool = False) -> Context:
    log = CommandLog(tmp_path / "run.log", Redactor(*url_secrets(spec.pkg_url)))
    ctx = Context(spec, PlainUI(io.StringIO()), log, StateStore(tmp_path), None, dry_run=dry_run)
    return ctx


def write_package(path: Path, files: dict[str, bytes], listed: dict[str, bytes] | None) -> Path:
    """A tar.gz with `files`, and a kube/manifest.json listing `listed` (None: no manifest)."""
    with tarfile.open(path, "w:gz") as tar:
        entries = dict(files)
        if listed is not None:
            records = [
                manifest.FileRecord(name, hashlib.sha256(data).hexdigest(), len(data), "x", "1")
                for name, data in listed.items()
            ]
            entries[manifest.MANIFEST] = manifest.render(
                "v1.28.15", "amd64", "none", {}, [], records
            )
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


KUBEADM = b"\x7fELF\x02\x01\x01" + b"\x00" * 11 + b"\x3e\x00" + b"kubeadm"
FILES = {"kube/bin/kubeadm": KUBEADM, "kube/bin/kubelet": b"kubelet", "kube/version": b"v1\n"}


# --- 1. authenticity ------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "ftp"])
def test_plain_http_or_ftp_url_without_a_checksum_is_refused_in_one_sentence(tmp_path, scheme):
    url = f"{scheme}://10.0.0.1/kube1.20.15.tar.gz"
    problems = spec_problems(make_spec(tmp_path, pkg_url=url))
    found = [p for p in problems if "plain" in p]
    assert len(found) == 1, problems
    assert f"is plain {scheme}" in found[0] and "--pkg-sha256" in found[0]
    assert found[0].endswith(".") and found[0].count(". ") == 0
    assert spec_problems(make_spec(tmp_path, pkg_url=url, pkg_sha256="a" * 64)) == []


def test_https_url_may_rely_on_its_published_checksum(tmp_path):
    assert spec_problems(make_spec(tmp_path, pkg_url="https://10.0.0.1/kube1.20.15.tar.gz")) == []
    assert checksum_url("https://h/k.tar.gz?sig=x") == "https://h/k.tar.gz.sha256?sig=x"


def test_join_with_a_plain_http_url_uses_the_checksum_recorded_at_init(tmp_path):
    from sealos.validate import join_request_problems

    state = ClusterState(status="ready", package_sha256="b" * 64)
    state.members = [Member("10.0.0.2", "master", "10.0.0.2", "m")]
    spec = make_spec(tmp_path, pkg_url="http://10.0.0.1/kube1.20.15.tar.gz")
    problems = join_request_problems(
        state, "config.yaml", spec, [], parse_hosts(["10.0.0.9"]), None, "b" * 64
    )
    assert problems == []


def test_pkg_sha256_with_a_local_pkg_that_differs_is_refused_before_any_change(tmp_path):
    pkg = write_package(tmp_path / "kube1.20.15.tar.gz", FILES, None)
    real = hashlib.sha256(pkg.read_bytes()).hexdigest()
    ctx = make_ctx(tmp_path, make_spec(tmp_path, pkg=pkg, pkg_sha256="0" * 64))
    problems = read_package(ctx)
    assert len(problems) == 1 and real in problems[0] and "0" * 64 in problems[0], problems
    assert "--pkg-sha256" in problems[0]
    ok = make_ctx(tmp_path, make_spec(tmp_path, pkg=pkg, pkg_sha256=real))
    assert read_package(ok) == [] and ok.package_sha256 == real


def test_a_package_that_does_not_match_its_manifest_is_refused(tmp_path):
    tampered = dict(FILES, **{"kube/bin/kubelet": b"kubelet, changed"})
    pkg = write_package(tmp_path / "kube1.28.15.tar.gz", tampered, FILES)
    ctx = make_ctx(tmp_path, make_spec(tmp_path, pkg=pkg))
    problems = read_package(ctx)
    assert len(problems) == 1, problems
    assert "does not match its kube/manifest.json: kube/bin/kubelet has SHA-256" in problems[0]
    assert "sealos package inspect" in problems[0] and ctx.package is None


def test_a_sound_manifest_is_verified_once_and_cached_with_the_checksum(tmp_path, monkeypatch):
    pkg = write_package(tmp_path / "kube1.28.15.tar.gz", FILES, FILES)
    reads = []
    real_scan = package_mod.scan
    monkeypatch.setattr(package_mod, "scan", lambda p: reads.append(p) or real_scan(p))
    info = package_mod.inspect(pkg, tmp_path / "cache")
    assert info.manifest_files == 3 and info.arch == "amd64"
    assert info.sha256 == hashlib.sha256(pkg.read_bytes()).hexdigest()
    again = package_mod.inspect(pkg, tmp_path / "cache")
    assert again == info and len(reads) == 1  # the second run reads the cache, not the file
    old = write_package(tmp_path / "kube1.20.15.tar.gz", FILES, None)
    assert package_mod.inspect(old).manifest_files is None  # old shape: nothing to verify


def test_inspect_reads_the_package_file_once(tmp_path, monkeypatch):
    pkg = write_package(tmp_path / "kube1.28.15.tar.gz", FILES, FILES)
    opened = []
    real_open = Path.open

    def counting_open(self, *a, **kw):
        if self == pkg:
            opened.append(self)
        return real_open(self, *a, **kw)

    monkeypatch.setattr(Path, "open", counting_open)
    package_mod.inspect(pkg)
    assert len(opened) == 1


def test_a_package_without_kubeadm_is_refused(tmp_path):
    pkg = write_package(tmp_path / "kube1.28.15.tar.gz", {"kube/version": b"v1"}, None)
    with pytest.raises(SpecError, match="has no kube/bin/kubeadm"):
        package_mod.inspect(pkg)


# --- 2. credentials in --pkg-url --------------------------------------------------------------


def test_url_credentials_are_masked_and_short_query_values_are_not_secrets():
    shown = redact_url(URL)
    assert PASSWORD not in shown and SIGNATURE not in shown and "bob" not in shown
    assert shown == f"https://{MASK}@10.0.0.1:8443/pkgs/kube1.20.15.tar.gz?{MASK}"
    assert (
        redact_url("https://10.0.0.1/kube1.20.15.tar.gz") == "https://10.0.0.1/kube1.20.15.tar.gz"
    )
    r = Redactor(*url_secrets(URL))
    assert r(f"curl {URL}; echo {PASSWORD} {SIGNATURE}; exit 1").endswith(
        f"echo {MASK} {MASK}; exit 1"
    )
    assert "1" not in url_secrets(URL)
    short = "https://h/kube1.20.15.tar.gz?sig=ab1"
    assert (
        Redactor(*url_secrets(short))(f"GET {short}") == f"GET https://h/kube1.20.15.tar.gz?{MASK}"
    )
    # another URL's query string is no secret: kubeadm's errors stay readable
    kubeadm_error = 'Post "https://10.0.0.2:6443/api/v1/secrets?timeout=10s": EOF'
    assert r(kubeadm_error) == kubeadm_error


def test_url_credentials_never_reach_the_state_file(tmp_path):
    spec = make_spec(tmp_path, pkg_url=URL)
    store = StateStore(tmp_path)
    store.save(ClusterState(settings=spec_mod.to_values(spec)))
    text = store.path.read_text()
    assert PASSWORD not in text and SIGNATURE not in text and "kube1.20.15.tar.gz" in text
    # join from that state must be given the URL again
    recorded = store.load()
    assert recorded is not None
    again = make_spec(tmp_path, pkg_url=recorded.settings["pkgUrl"], pkg_sha256="a" * 64)
    assert any("give the URL again with --pkg-url" in p for p in spec_problems(again))


def test_messages_and_the_dry_run_show_the_url_redacted(tmp_path):
    spec = make_spec(tmp_path, pkg_url=URL.replace("https", "http"), pkg_sha256="a" * 64)
    assert all(PASSWORD not in p for p in spec_problems(make_spec(tmp_path, pkg_url="ftp:/" + URL)))
    ctx = make_ctx(tmp_path, spec, dry_run=True)
    ctx.package_sha256 = "a" * 64
    node = ClusterHost(spec.masters[0], "master", SSHConnection(spec.masters[0], spec.credentials))
    node.facts = HostFacts(tools={"curl"})
    ctx.nodes = [node]
    asyncio.run(DistributePackage().run_host(ctx, node))
    plan = " ".join(ctx.plan[node.name])
    assert "download http://" in plan and PASSWORD not in plan and SIGNATURE not in plan

    # a real run whose download fails: the message names the URL redacted
    ctx.dry_run = False
    seen: list[tuple[str, str | None]] = []

    async def fake_run(command, *, input=None, check=True, timeout=None, **kw):
        seen.append((command, input))
        return CommandResult(22, "", f"curl: (22) 404 for {URL}")

    node.ssh.run = fake_run  # type: ignore[method-assign]
    with pytest.raises(HostError) as e:
        asyncio.run(DistributePackage()._download(ctx, node, "/root/k.tar.gz", "a" * 64))
    assert PASSWORD not in str(e.value) and SIGNATURE not in str(e.value), str(e.value)
    assert all(PASSWORD not in command for command, _ in seen)
    assert PASSWORD in (seen[0][1] or "")  # the URL travels on stdin


class _AuthHandler(http.server.BaseHTTPRequestHandler):
    """Serves one body to a request with bob's credentials and the signed query; records the
    argv of every process on this machine that holds the password while it answers."""

    body = b"package bytes"
    leaks: ClassVar[list[str]] = []
    served: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        expected = "Basic " + base64.b64encode(f"bob:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="pkgs"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                if PASSWORD.encode() in argv or SIGNATURE.encode() in argv:
                    self.leaks.append(argv.decode(errors="replace"))
        self.served.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("tool", ["curl", "wget"])
def test_curl_and_wget_get_the_url_on_stdin_and_use_its_credentials(tmp_path, tool):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AuthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _AuthHandler.leaks, _AuthHandler.served = [], []
    try:
        port = server.server_address[1]
        url = f"http://bob:{PASSWORD}@127.0.0.1:{port}/k.tar.gz?X-Sig={SIGNATURE}"
        out = tmp_path / "k.tar.gz"
        proc = subprocess.run(
            ["sh", "-c", fetch_command(tool, str(out))],
            input=fetch_input(tool, url),
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == _AuthHandler.body
    assert _AuthHandler.served == [f"/k.tar.gz?X-Sig={SIGNATURE}"]
    assert _AuthHandler.leaks == []
