"""Issue 11 (Trust) on the lab: a --pkg-url holding credentials (user:password@ and a signed
query string) is used by every host's download, yet appears in no host's /proc/*/cmdline during
the run, nor in the state file, the log, the dry run or the output; and no bootstrap token that
sealos made for the joins is left valid after init or join (`kubeadm token list` on the master).

The package server runs on the lab's operator side: it answers only requests carrying the
credentials and the signature, and holds each package download for a few seconds, so that the
processes downloading are there to be looked at.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sealos_lab.lab import Lab
from sealos_lab.testing import CmdlineWatch, lab_session, wait_for_output

pytestmark = [pytest.mark.root, pytest.mark.lab]

VERSION = "v1.20.15"
USER = "fetcher"
PASSWORD = "Pkg-pa55"
SIGNATURE = "c2lnbmVkLXVybC1mb3ItdGhlLWxhYg"
DOWNLOADS = r"^(curl|wget) .*(-K -|http)"  # argv of curl/wget downloading
PORT = 18111
HOLD_SECONDS = 3

SERVER = r"""
import base64, http.server, sys, time
port, folder, user, password, signature, hold = sys.argv[1:7]
expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=folder, **kw)

    def do_GET(self):
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="packages"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        if query != f"sig={signature}":
            self.send_error(403)
            return
        print("served", path, flush=True)
        time.sleep(float(hold))  # the downloading processes stay to be looked at
        self.path = path
        super().do_GET()

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("0.0.0.0", int(port)), Handler)
print("Serving", flush=True)
server.serve_forever()
"""


def build_package(folder: Path) -> Path:
    from sealos_lab.package import build

    return build(VERSION, folder / f"kube{VERSION[1:]}.tar.gz")


def sealos(lab: Lab, home: Path, args: list[str], timeout: float = 600) -> subprocess.Popen:
    env = {"PATH": os.environ["PATH"], "SEALOS_HOME": str(home), "SEALOS_PASSWORD": lab.password}
    return subprocess.Popen(
        lab.run_argv(["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m",
                      "sealos", *args]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def kubeadm_tokens(lab: Lab, host: str) -> list[str]:
    proc = lab.exec(host, ["kubeadm", "token", "list"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [
        line.split()[0]
        for line in proc.stdout.splitlines()
        if re.match(r"^[a-z0-9]{6}\.[a-z0-9]{16}\s", line)
    ]


def secret_free(text: str) -> bool:
    return PASSWORD not in text and SIGNATURE not in text


def test_url_credentials_stay_secret_and_no_join_token_is_left(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    www = tmp_path / "www"
    www.mkdir()
    package = build_package(www)
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    home = tmp_path / "home"
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    with lab_session("sec11tr", hosts=3) as lab:
        m0, n1, n2 = lab.hosts
        server = subprocess.Popen(
            lab.run_argv([sys.executable, "-u", str(script), str(PORT), str(www), USER, PASSWORD,
                          SIGNATURE, str(HOLD_SECONDS)]),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            wait_for_output(server, "Serving")
            url = (
                f"http://{USER}:{PASSWORD}@{lab.operator_ip}:{PORT}/{package.name}?sig={SIGNATURE}"
            )
            args = ["init", "--master", m0.ip, "--node", n1.ip, "--version", VERSION,
                    "--pkg-url", url, "--pkg-sha256", digest]  # fmt: skip

            dry = sealos(lab, home, [*args, "--dry-run"])
            out, err = dry.communicate(timeout=600)
            assert dry.returncode == 0, out[-3000:] + err
            assert f"download http://<redacted>@{lab.operator_ip}:{PORT}/" in out, out[-3000:]
            assert secret_free(out + err), "the dry run shows the URL's credentials"

            with CmdlineWatch(lab, [PASSWORD, SIGNATURE], DOWNLOADS) as watch:
                init = sealos(lab, home, args)
                out, err = init.communicate(timeout=900)
            assert init.returncode == 0, out[-4000:] + err
            assert "package downloaded" in out
            assert watch.seen > 0, "no download was seen: the watch proves nothing"
            assert watch.leaks == [], watch.leaks[:3]
            assert secret_free(out + err)
            state = (home / "config.yaml").read_text()
            assert secret_free(state) and package.name in state
            logs = list((home / "logs").glob("init-*.log"))
            assert logs and all(secret_free(p.read_text()) for p in logs)
            assert any("curl -fsSL -K -" in p.read_text() for p in logs)
            # kubeadm init made a token for the node's join: gone once init ends
            assert kubeadm_tokens(lab, m0.name) == []

            # join: the state keeps no credentials, so the URL is given again
            joined = sealos(lab, home, ["join", "--node", n2.ip])
            out, err = joined.communicate(timeout=600)
            assert joined.returncode == 1 and "give the URL again with --pkg-url" in err + out
            with CmdlineWatch(lab, [PASSWORD, SIGNATURE], DOWNLOADS) as watch:
                joined = sealos(lab, home, ["join", "--node", n2.ip, "--pkg-url", url])
                out, err = joined.communicate(timeout=900)
            assert joined.returncode == 0, out[-4000:] + err
            assert watch.seen > 0 and watch.leaks == [], watch.leaks[:3]
            assert secret_free(out + err)
            assert secret_free((home / "config.yaml").read_text())
            assert all(secret_free(p.read_text()) for p in (home / "logs").glob("*.log"))
            # `kubeadm token create` made a token for n2's join: deleted at the end of the run
            assert kubeadm_tokens(lab, m0.name) == []
            got = lab.exec(n2.name, ["sha256sum", f"/root/{package.name}"]).stdout.split()
            assert got and got[0] == digest
        finally:
            server.terminate()
            server.wait(10)
