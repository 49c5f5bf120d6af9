"""The etcdctl stand-in: `member list` and `member remove ID`, with etcdctl's flags and output.

The lab runs no etcd: each master's stand-in apiserver is its etcd member too (apiserver/
membership.py). So `--endpoints https://127.0.0.1:2379` means this master's member, reached at
its stand-in apiserver (address and port from the kube-apiserver static pod manifest, verified
with the cluster CA it names); `--cacert/--cert/--key` must name readable files, and the client
certificate (signed by the etcd CA, e.g. /etc/kubernetes/pki/etcd/healthcheck-client.crt) is what
the members API accepts, as real etcd accepts only its own CA's clients.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import yaml

from .apiclient import ApiClient, ApiError, ConnectError
from .hostenv import host_path

APISERVER_MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
_ETCDCTL_VALUE_FLAGS = ("endpoints", "cacert", "cert", "key", "write-out", "command-timeout")


def _etcdctl_fail(message: str) -> int:
    sys.stderr.write(f"Error: {message}\n")
    return 1


def _etcdctl_parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    flags: dict[str, str] = {}
    words: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        name = arg.lstrip("-")
        if arg.startswith("-") and name.split("=", 1)[0] in (*_ETCDCTL_VALUE_FLAGS, "w"):
            key = "write-out" if name.split("=", 1)[0] == "w" else name.split("=", 1)[0]
            if "=" in name:
                flags[key] = name.split("=", 1)[1]
            elif index < len(argv):
                flags[key] = argv[index]
                index += 1
            else:
                raise ValueError(f"flag needs an argument: {arg}")
        elif arg.startswith("-"):
            raise ValueError(f"unknown flag: {arg}")
        else:
            words.append(arg)
    return flags, words


def _local_member(flags: dict[str, str]) -> ApiClient:
    """A client of this master's member (its stand-in apiserver), with the given credentials."""
    endpoint = flags.get("endpoints", "127.0.0.1:2379")
    if endpoint.split("://")[-1] not in ("127.0.0.1:2379", "localhost:2379"):
        raise ValueError(
            f"sealos-lab stand-in etcdctl reaches only this master's member "
            f"(https://127.0.0.1:2379), not {endpoint}"
        )
    for flag in ("cacert", "cert", "key"):
        if flag in flags:
            Path(flags[flag]).read_bytes()  # as etcdctl: a missing file is an error
    if "cert" not in flags or "key" not in flags:
        raise ValueError("context deadline exceeded (no client certificate: --cert/--key)")
    pod = yaml.safe_load(host_path(APISERVER_MANIFEST).read_text())
    options = {}
    for arg in pod["spec"]["containers"][0].get("command", [])[1:]:
        name, _, value = str(arg).lstrip("-").partition("=")
        options[name] = value
    server = f"https://{options['advertise-address']}:{options.get('secure-port', '6443')}"
    return ApiClient(
        server,
        ca_pem=Path(options["client-ca-file"]).read_text(),
        cert_pem=Path(flags["cert"]).read_text(),
        key_pem=Path(flags["key"]).read_text(),
        timeout=float(flags.get("command-timeout", "5s").rstrip("s") or 5),
    )


def _cluster_id() -> str:
    ca = host_path("/etc/kubernetes/pki/etcd/ca.crt")
    data = ca.read_bytes() if ca.exists() else b""
    return hashlib.sha256(data).hexdigest()[:16].lstrip("0")


def _member_line(member: dict[str, Any]) -> str:
    """etcdctl's simple format; an unstarted member has no name and no client URL yet."""
    started = bool(member.get("started"))
    client_url = str(member["peerURL"]).rsplit(":", 1)[0] + ":2379" if started else ""
    return ", ".join(
        [
            str(member["ID"]),
            "started" if started else "unstarted",
            str(member["name"]) if started else "",
            str(member["peerURL"]),
            client_url,
            "true" if member.get("learner") else "false",
        ]
    )


def etcdctl_main(argv: list[str]) -> int:
    """etcdctl [--endpoints E --cacert F --cert F --key F] member list|remove ID."""
    if argv[:1] == ["version"]:
        print("etcdctl version: 3.5 (sealos-lab stand-in)\nAPI version: 3.5")
        return 0
    try:
        flags, words = _etcdctl_parse(argv)
        if words[:2] == ["member", "list"]:
            client = _local_member(flags)
            members = client.call("GET", "/apis/sealos-lab.io/v1/members")["members"]
            for member in members:
                print(_member_line(member))
            return 0
        if words[:2] == ["member", "remove"] and len(words) == 3:
            client = _local_member(flags)
            client.call("DELETE", f"/apis/sealos-lab.io/v1/members/{words[2]}")
            print(f"Member {words[2]} removed from cluster {_cluster_id()}")
            return 0
    except (ValueError, OSError, KeyError) as exc:
        return _etcdctl_fail(str(exc))
    except (ApiError, ConnectError) as exc:
        return _etcdctl_fail(str(exc))
    return _etcdctl_fail(
        f"unknown command {' '.join(words)!r} (the stand-in has member list|remove)"
    )
