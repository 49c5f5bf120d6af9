"""The kubectl stand-in: get nodes, apply -f, delete node, version, cluster-info.

The kubeconfig is found as kubectl finds it: --kubeconfig, else $KUBECONFIG, else
$HOME/.kube/config; with none, kubectl talks to localhost:8080 (and is refused), exactly like the
real one. /etc/kubernetes/admin.conf is NOT read implicitly.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

import yaml

from .apiclient import ApiClient, ApiError, ConnectError, parse_rfc3339, split_server
from .cliflags import Flag, FlagError, ParsedFlags, parse_flags
from .decoder import ConfigError, load_yaml_documents
from .embedded import PACKAGE_VERSION
from .hostenv import header_line
from .pki import PkiError, load_kubeconfig
from .versions import (
    KubeVersion,
    kubectl_prints_short_version,
    parse_kube_version,
    version_info,
    version_info_struct,
)

CLUSTER_SCOPED = {
    "namespace",
    "node",
    "clusterrole",
    "clusterrolebinding",
    "customresourcedefinition",
    "persistentvolume",
    "storageclass",
    "priorityclass",
    "apiservice",
    "runtimeclass",
    "validatingwebhookconfiguration",
    "mutatingwebhookconfiguration",
    "podsecuritypolicy",
    "csidriver",
    "csinode",
    "volumeattachment",
    "ingressclass",
}
NODE_WORDS = {"node", "nodes", "no"}
POD_WORDS = {"pod", "pods", "po"}
_FLAGS = {
    "kubeconfig": Flag("kubeconfig"),
    "namespace": Flag("namespace", short="n"),
    "all-namespaces": Flag("all-namespaces", "bool", short="A"),
    "output": Flag("output", short="o"),
    "filename": Flag("filename", "strings", short="f"),
    "short": Flag("short", "bool"),
    "client": Flag("client", "bool"),
    "server": Flag("server", short="s"),
    "request-timeout": Flag("request-timeout"),
    "validate": Flag("validate", default="true"),
    "v": Flag("v", "int", short="v"),
    "wait": Flag("wait", "bool"),
    "ignore-not-found": Flag("ignore-not-found", "bool"),
    "selector": Flag("selector", short="l"),
    "field-selector": Flag("field-selector"),
    "help": Flag("help", "bool", short="h"),
}


class KubectlFailure(Exception):
    """kubectl fails; str() goes to stderr, exit 1."""


def _kubectl_version() -> KubeVersion:
    parsed = parse_kube_version(PACKAGE_VERSION)
    assert parsed is not None
    return parsed


def _client(parsed: ParsedFlags) -> ApiClient:
    candidates: list[Path] = []
    if parsed.values.get("kubeconfig"):
        path = Path(parsed.values["kubeconfig"])
        if not path.exists():
            raise KubectlFailure(f"error: stat {path}: no such file or directory")
        candidates.append(path)
    elif os.environ.get("KUBECONFIG"):
        candidates += [Path(p) for p in os.environ["KUBECONFIG"].split(":") if p]
    else:
        candidates.append(Path.home() / ".kube" / "config")
    for path in candidates:
        if path.exists():
            try:
                return ApiClient.from_kubeconfig(load_kubeconfig(path))
            except (PkiError, OSError, ValueError) as exc:
                raise KubectlFailure(f'error: error loading config file "{path}": {exc}') from None
    # No kubeconfig: kubectl's default server, which nothing serves.
    raise KubectlFailure(
        "The connection to the server localhost:8080 was refused - did you specify the right "
        "host or port?"
    )


def _call(client: ApiClient, method: str, path: str, body: Any = None) -> Any:
    try:
        return client.call(method, path, body)
    except ConnectError as exc:
        if exc.kind == "refused":
            raise KubectlFailure(
                f"The connection to the server {exc.host}:{exc.port} was refused - did you "
                "specify the right host or port?"
            ) from None
        raise KubectlFailure(f"Unable to connect to the server: {exc}") from None
    except ApiError as exc:
        if exc.status == 401:
            raise KubectlFailure(
                "error: You must be logged in to the server (Unauthorized)"
            ) from None
        reason = exc.reason or {403: "Forbidden", 404: "NotFound"}.get(exc.status, "InternalError")
        raise KubectlFailure(f"Error from server ({reason}): {exc}") from None


def human_duration(seconds: float) -> str:
    """kubectl's AGE column (k8s.io/apimachinery duration.HumanDuration)."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    total = int(seconds)
    if total < 120:
        return f"{total}s"
    minutes = total // 60
    if minutes < 10:
        return f"{minutes}m{total % 60}s" if total % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    days = hours // 24
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if years < 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def tabulate(rows: list[list[str]]) -> str:
    """Columns as kubectl's tabwriter aligns them (min width 6, padding 3, last column free)."""
    if not rows:
        return ""
    widths = [max(6, max(len(row[i]) for row in rows) + 3) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("".join(cells))
    return "\n".join(lines) + "\n"


def _roles(labels: dict[str, str]) -> str:
    roles = sorted(
        {
            k.split("/", 1)[1]
            for k in labels
            if k.startswith("node-role.kubernetes.io/") and "/" in k
        }
        | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set())
    )
    return ",".join(r for r in roles if r) or "<none>"


def _node_row(node: dict[str, Any], wide: bool) -> list[str]:
    meta = node["metadata"]
    status = node.get("status", {})
    ready = [c for c in status.get("conditions", []) if c.get("type") == "Ready"]
    state = "Ready" if ready and ready[0].get("status") == "True" else "NotReady"
    if node.get("spec", {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    age = human_duration(time.time() - parse_rfc3339(meta["creationTimestamp"]))
    info = status.get("nodeInfo", {})
    row = [meta["name"], state, _roles(meta.get("labels", {})), age, info.get("kubeletVersion", "")]
    if wide:
        addresses = {a["type"]: a["address"] for a in status.get("addresses", [])}
        row += [
            addresses.get("InternalIP", "<none>"),
            addresses.get("ExternalIP", "<none>"),
            info.get("osImage", ""),
            info.get("kernelVersion", ""),
            info.get("containerRuntimeVersion", ""),
        ]
    return row


def _get_nodes(parsed: ParsedFlags, names: list[str]) -> int:
    client = _client(parsed)
    try:
        if names:
            items = [_call(client, "GET", f"/api/v1/nodes/{name}") for name in names]
        else:
            items = _call(client, "GET", "/api/v1/nodes").get("items", [])
    finally:
        client.close()
    output = parsed.values.get("output") or ""
    if output == "json":
        doc: Any = (
            items[0]
            if names and len(items) == 1
            else {"apiVersion": "v1", "kind": "List", "items": items}
        )
        sys.stdout.write(json.dumps(doc, indent=4) + "\n")
        return 0
    if output == "yaml":
        doc = (
            items[0]
            if names and len(items) == 1
            else {"apiVersion": "v1", "kind": "List", "items": items}
        )
        sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))
        return 0
    if output == "name":
        for item in items:
            sys.stdout.write(f"node/{item['metadata']['name']}\n")
        return 0
    if output not in ("", "wide"):
        raise KubectlFailure(
            f'error: unable to match a printer suitable for the output format "{output}", allowed '
            "formats are: json,name,wide,yaml"
        )
    if not items:
        sys.stderr.write(
            "No resources found\n" if _kubectl_version().minor >= 17 else "No resources found.\n"
        )
        return 0
    header = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    if output == "wide":
        header += ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    rows = [header] + [_node_row(n, output == "wide") for n in items]
    sys.stdout.write(tabulate(rows))
    return 0


def _get_applied(parsed: ParsedFlags, kind_word: str, names: list[str]) -> int:
    client = _client(parsed)
    try:
        items = _call(client, "GET", "/apis/sealos-lab.io/v1/applied").get("items", [])
    finally:
        client.close()
    wanted = kind_word.lower().split(".")[0]
    matches = []
    for item in items:
        kind = str(item.get("kind", "")).lower()
        if wanted not in (kind, kind + "s", kind + "es") and not (
            kind.endswith("y") and wanted == kind[:-1] + "ies"
        ):
            continue
        meta = item.get("metadata") or {}
        namespace = meta.get("namespace") or ("" if kind in CLUSTER_SCOPED else "default")
        if (
            not parsed.values.get("all-namespaces")
            and kind not in CLUSTER_SCOPED
            and namespace != (parsed.values.get("namespace") or "default")
        ):
            continue
        if names and meta.get("name") not in names:
            continue
        matches.append((namespace, meta.get("name", "")))
    if not matches:
        sys.stderr.write(
            f"No resources found in {parsed.values.get('namespace') or 'default'} namespace.\n"
        )
        return 0
    rows = [["NAMESPACE", "NAME"] if parsed.values.get("all-namespaces") else ["NAME"]]
    for namespace, name in sorted(matches):
        rows.append([namespace, name] if parsed.values.get("all-namespaces") else [name])
    sys.stdout.write(tabulate([[*r, ""] for r in rows]).replace("   \n", "\n"))
    return 0


def _read_manifests(paths: list[str]) -> list[tuple[str, dict[str, Any]]]:
    documents: list[tuple[str, dict[str, Any]]] = []
    for source in paths:
        if source == "-":
            files = [("-", sys.stdin.read())]
        else:
            path = Path(source)
            if not path.exists():
                raise KubectlFailure(f'error: the path "{source}" does not exist')
            targets = (
                sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
                if path.is_dir()
                else [path]
            )
            files = [(str(p), p.read_text()) for p in targets]
        for name, text in files:
            try:
                docs = load_yaml_documents(text)
            except ConfigError as exc:
                raise KubectlFailure(f"error: error parsing {name}: {exc}") from None
            for doc in docs:
                if isinstance(doc, dict) and doc.get("kind") == "List":
                    documents += [(name, item) for item in doc.get("items") or []]
                else:
                    documents.append((name, doc))
    return documents


def _apply(parsed: ParsedFlags) -> int:
    paths = parsed.values.get("filename") or []
    if not paths:
        raise KubectlFailure("error: must specify one of -f and -k")
    documents = _read_manifests(paths)
    validate = str(parsed.values.get("validate")).lower() not in ("false", "ignore")
    for source, doc in documents:
        problems = []
        if not isinstance(doc, dict):
            raise KubectlFailure(
                f'error: error validating "{source}": error validating data: invalid object'
            )
        if not doc.get("apiVersion"):
            problems.append("apiVersion not set")
        if not doc.get("kind"):
            problems.append("kind not set")
        if problems and validate:
            shown = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
            raise KubectlFailure(
                f'error: error validating "{source}": error validating data: {shown}; if you '
                "choose "
                "to ignore these errors, turn validation off with --validate=false"
            )
        if not (doc.get("metadata") or {}).get("name"):
            raise KubectlFailure(
                f"error: error when retrieving current configuration of:\nResource: "
                f'"{doc.get("kind")}", Name: "", Namespace: "default"\nfrom server for: '
                f'"{source}": '
                "resource name may not be empty"
            )
    client = _client(parsed)
    try:
        for _source, doc in documents:
            kind = str(doc["kind"]).lower()
            meta = doc.setdefault("metadata", {})
            if kind not in CLUSTER_SCOPED and not meta.get("namespace"):
                meta["namespace"] = parsed.values.get("namespace") or "default"
            result = _call(client, "POST", "/apis/sealos-lab.io/v1/applied", doc)["result"]
            group = str(doc["apiVersion"]).rpartition("/")[0]
            shown = f"{kind}.{group}" if group else kind
            sys.stdout.write(f"{shown}/{meta['name']} {result}\n")
    finally:
        client.close()
    return 0


def _pods_path(parsed: ParsedFlags) -> str:
    namespace = parsed.values.get("namespace") or "default"
    if parsed.values.get("all-namespaces"):
        namespace = "*"
    return f"/api/v1/namespaces/{namespace}/pods"


def _list_pods(client: ApiClient, parsed: ParsedFlags) -> list[dict[str, Any]]:
    query = [
        f"{key}={quote(str(parsed.values[flag]))}"
        for key, flag in (("labelSelector", "selector"), ("fieldSelector", "field-selector"))
        if parsed.values.get(flag)
    ]
    path = _pods_path(parsed) + ("?" + "&".join(query) if query else "")
    return list(_call(client, "GET", path).get("items") or [])


def _get_pods(parsed: ParsedFlags, names: list[str]) -> int:
    client = _client(parsed)
    try:
        if names:
            items = [_call(client, "GET", f"{_pods_path(parsed)}/{n}") for n in names]
        else:
            items = _list_pods(client, parsed)
    finally:
        client.close()
    output = parsed.values.get("output") or ""
    if output in ("json", "yaml"):
        doc = {"apiVersion": "v1", "kind": "List", "items": items}
        text = json.dumps(doc, indent=4) + "\n" if output == "json" else yaml.safe_dump(doc)
        sys.stdout.write(text)
        return 0
    if output == "name":
        sys.stdout.write("".join(f"pod/{p['metadata']['name']}\n" for p in items))
        return 0
    if not items:
        sys.stderr.write("No resources found\n")
        return 0
    now = time.time()
    rows = [["NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE"]]
    for pod in items:
        age = human_duration(now - parse_rfc3339(pod["metadata"]["creationTimestamp"]))
        node = str(pod.get("spec", {}).get("nodeName", "<none>"))
        rows.append([pod["metadata"]["name"], "1/1", "Running", "0", age, node])
    sys.stdout.write(tabulate(rows))
    return 0


def _delete_pods(parsed: ParsedFlags, names: list[str]) -> int:
    client = _client(parsed)
    try:
        if not names:
            if not parsed.values.get("selector") and not parsed.values.get("field-selector"):
                raise KubectlFailure("error: resource(s) were provided, but no name was specified")
            names = [p["metadata"]["name"] for p in _list_pods(client, parsed)]
            if not names:
                sys.stdout.write("No resources found\n")
        for name in names:
            try:
                _call(client, "DELETE", f"{_pods_path(parsed)}/{name}")
            except KubectlFailure as e:
                if parsed.values.get("ignore-not-found") and "(NotFound)" in str(e):
                    continue
                raise
            sys.stdout.write(f'pod "{name}" deleted\n')
    finally:
        client.close()
    return 0


def _delete(parsed: ParsedFlags, words: list[str]) -> int:
    if words and words[0].lower() in POD_WORDS:
        return _delete_pods(parsed, words[1:])
    if not words or words[0].lower() not in NODE_WORDS:
        raise KubectlFailure(
            "error: the sealos-lab stand-in deletes nodes and pods only: kubectl delete node NAME"
        )
    if len(words) < 2:
        raise KubectlFailure("error: resource(s) were provided, but no name was specified")
    client = _client(parsed)
    try:
        for name in words[1:]:
            try:
                _call(client, "DELETE", f"/api/v1/nodes/{name}")
            except KubectlFailure as e:
                # kubectl --ignore-not-found: a missing object is no error and prints nothing
                if parsed.values.get("ignore-not-found") and "(NotFound)" in str(e):
                    continue
                raise
            sys.stdout.write(f'node "{name}" deleted\n')
    finally:
        client.close()
    return 0


def _version_cmd(parsed: ParsedFlags) -> int:
    version = _kubectl_version()
    output = parsed.values.get("output") or ""
    short = kubectl_prints_short_version(version) or parsed.values.get("short")
    client_info = version_info(version)
    server: Optional[dict[str, Any]] = None
    problem: Optional[KubectlFailure] = None
    if not parsed.values.get("client"):
        try:
            client = _client(parsed)
            try:
                server = _call(client, "GET", "/version")
            finally:
                client.close()
        except KubectlFailure as exc:
            problem = exc
    if output in ("json", "yaml"):
        doc: dict[str, Any] = {"clientVersion": client_info}
        if server:
            doc["serverVersion"] = server
        sys.stdout.write(
            json.dumps(doc, indent=2) + "\n"
            if output == "json"
            else yaml.safe_dump(doc, sort_keys=False)
        )
    elif short:
        sys.stdout.write(f"Client Version: {version}\n")
        if version.minor >= 24:
            sys.stdout.write("Kustomize Version: v5.0.4-0.20230601165947-6ce0bf390ce3\n")
        if server:
            sys.stdout.write(f"Server Version: {server.get('gitVersion')}\n")
    else:
        sys.stdout.write(f"Client Version: {version_info_struct(version)}\n")
        if server:
            major, minor = server.get("major", ""), server.get("minor", "")
            git = server.get("gitVersion", "")
            sys.stdout.write(
                "Server Version: "
                f'version.Info{{Major:"{major}", Minor:"{minor}", GitVersion:"{git}", '
                f'GitTreeState:"clean", Compiler:"gc", Platform:"linux/amd64"}}\n'
            )
    if problem is not None:
        raise problem
    return 0


def _cluster_info(parsed: ParsedFlags) -> int:
    client = _client(parsed)
    try:
        _call(client, "GET", "/healthz")
    finally:
        client.close()
    host, port = split_server(client.server)
    word = "control plane" if _kubectl_version().minor >= 20 else "master"
    sys.stdout.write(f"Kubernetes {word} is running at https://{host}:{port}\n\n")
    sys.stdout.write(
        "To further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.\n"
    )
    return 0


def kubectl_main(argv: list[str]) -> int:
    """Entry point of the kubectl stand-in."""
    sys.stderr.write(header_line() + "\n")
    try:
        parsed = parse_flags(argv, _FLAGS)
        words = parsed.args
        if not words or (parsed.values.get("help") and not words):
            sys.stdout.write(
                "kubectl (sealos-lab stand-in): get nodes | apply -f FILE | delete node NAME | "
                "version | cluster-info\n"
            )
            return 0
        command, rest = words[0], words[1:]
        if command == "get":
            if not rest:
                raise KubectlFailure("You must specify the type of resource to get.")
            if rest[0].lower() in NODE_WORDS:
                return _get_nodes(parsed, rest[1:])
            if rest[0].lower() in POD_WORDS:
                return _get_pods(parsed, rest[1:])
            return _get_applied(parsed, rest[0], rest[1:])
        if command == "apply":
            return _apply(parsed)
        if command == "delete":
            return _delete(parsed, rest)
        if command == "version":
            return _version_cmd(parsed)
        if command == "cluster-info":
            return _cluster_info(parsed)
        raise KubectlFailure(f'error: unknown command "{command}" for "kubectl"')
    except FlagError as exc:
        sys.stderr.write(f"error: {exc}\nSee 'kubectl --help' for usage.\n")
        return 1
    except KubectlFailure as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    except Exception as exc:  # one line for the user, like kubectl's own errors
        sys.stderr.write(f"error: {exc.__class__.__name__}: {exc}\n")
        return 1
