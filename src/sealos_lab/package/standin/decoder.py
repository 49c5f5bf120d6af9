"""Strict decoding of kubeadm config files against the upstream field lists (the schemas).

Multi-document YAML; every document's apiVersion/kind must be one the target release accepts; every
field must exist in that release (sinceKubernetes / removedInKubernetes honoured) and have the
right JSON type; durations must parse like Go's time.ParseDuration. Real kubeadm only warns about
unknown fields; the stand-in makes them errors on purpose, so the installer's mistakes surface.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

from .versions import KubeVersion, api_minor_range, minor_number, old_api_message_has_kind

KUBEADM_GROUP = "kubeadm.k8s.io"
COMPONENT_APIS = {
    "kubelet.config.k8s.io/v1beta1": "KubeletConfiguration",
    "kubeproxy.config.k8s.io/v1alpha1": "KubeProxyConfiguration",
}
# Which kubeadm release to use for migrating away from an API version a release no longer reads
# (cmd/kubeadm/app/util/config/common.go, oldKnownAPIVersions).
_OLD_KUBEADM_APIS = {
    "kubeadm.k8s.io/v1alpha1": "v1.11",
    "kubeadm.k8s.io/v1alpha2": "v1.12",
    "kubeadm.k8s.io/v1alpha3": "v1.14",
    "kubeadm.k8s.io/v1beta1": "v1.15",
    "kubeadm.k8s.io/v1beta2": "v1.22",
    "kubeadm.k8s.io/v1beta3": "v1.35",
}
_SCHEME_NAME = "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31"

_DURATION_RE = re.compile(r"^[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+$")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DATE_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$")
_QUANTITY_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$")
_GO_SCALARS = {"string": "string", "integer": "int32", "number": "float64", "boolean": "bool"}


class ConfigError(Exception):
    """A config file the release refuses; str() is the message kubeadm would print."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass
class ConfigDocument:
    """One decoded YAML document of a config file."""

    api_version: str
    kind: str
    data: dict[str, Any]

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0] if "/" in self.api_version else ""


@dataclass
class DecodedConfig:
    """All documents of a config file, plus warnings kubeadm would print (deprecated APIs)."""

    documents: list[ConfigDocument] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def find(self, kind: str, group: str = KUBEADM_GROUP) -> Optional[ConfigDocument]:
        """The document of that kind (kubeadm group by default), or None."""
        for doc in self.documents:
            if doc.kind == kind and doc.group == group:
                return doc
        return None


class _NoTimestampLoader(yaml.SafeLoader):
    """YAML 1.1 like go-yaml, except that timestamps stay strings (as sigs.k8s.io/yaml does)."""


_NoTimestampLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml_documents(text: str) -> list[Any]:
    """All non-empty documents of a YAML stream; ConfigError with kubeadm's wording on bad YAML."""
    try:
        docs = list(yaml.load_all(text, Loader=_NoTimestampLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"error converting YAML to JSON: yaml: {where}{problem}") from None
    return [doc for doc in docs if doc is not None]


def parse_go_duration(text: str) -> Optional[float]:
    """Seconds of a Go duration ("1m30s", "4m0s", "0"), or None when Go would refuse it."""
    if text == "0":
        return 0.0
    if not _DURATION_RE.match(text):
        return None
    sign = -1.0 if text.startswith("-") else 1.0
    total = sum(
        float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART_RE.findall(text)
    )
    return sign * total


def format_go_duration(seconds: float) -> str:
    """Go's Duration.String() for whole seconds: 300 -> "5m0s", 86400 -> "24h0m0s"."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _gvk_text(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    return f'schema.GroupVersionKind{{Group:"{group}", Version:"{version}", Kind:"{kind}"}}'


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _present_in(node: dict[str, Any], version: KubeVersion) -> bool:
    since = node.get("sinceKubernetes")
    removed = node.get("removedInKubernetes")
    if since and version.minor < minor_number(since):
        return False
    return not (removed and version.minor >= minor_number(removed))


def _type_for(node: dict[str, Any], version: KubeVersion) -> str:
    by_version = node.get("x-typeByVersion")
    if by_version:
        for type_name, span in by_version.items():
            first, _, last = span.partition("..")
            if minor_number(first) <= version.minor <= minor_number(last or first):
                return str(type_name)
    return str(node["type"])


def _go_type(node: dict[str, Any], name: str, version: KubeVersion) -> str:
    kind = _type_for(node, version)
    if kind in _GO_SCALARS:
        return _GO_SCALARS[kind]
    if kind == "array":
        return "[]" + _go_type(node["items"], name, version)
    if kind == "map":
        return "map[string]" + _go_type(node["values"], name, version)
    return name[:1].upper() + name[1:]


class _Checker:
    """Walks one document against its schema; raises ConfigError at the first problem (as Go)."""

    def __init__(self, api_version: str, kind: str, version: KubeVersion) -> None:
        self.prefix = f"error unmarshaling configuration {_gvk_text(api_version, kind)}: "
        self.kind = kind
        self.version = version

    def check(self, node: dict[str, Any], value: Any, path: list[str], struct: str) -> None:
        if value is None:
            return  # JSON null leaves a Go field at its zero value
        kind = _type_for(node, self.version)
        if kind == "object":
            self._check_object(node, value, path, struct)
        elif kind == "array":
            if not isinstance(value, list):
                self._type_error(node, value, path, struct)
            for index, item in enumerate(value):
                self.check(node["items"], item, [*path[:-1], f"{path[-1]}[{index}]"], struct)
        elif kind == "map":
            if not isinstance(value, dict):
                self._type_error(node, value, path, struct)
            for key, item in value.items():
                self.check(node["values"], item, [*path, str(key)], struct)
        else:
            self._check_scalar(node, kind, value, path, struct)

    def _check_object(self, node: dict[str, Any], value: Any, path: list[str], struct: str) -> None:
        if not isinstance(value, dict):
            self._type_error(node, value, path, struct)
        if node.get("open"):
            return
        properties = {
            name: child
            for name, child in node.get("properties", {}).items()
            if _present_in(child, self.version)
        }
        own_struct = self.kind if not path else _go_type(node, path[-1].split("[")[0], self.version)
        for key, item in value.items():
            name = str(key)
            if name not in properties:
                field_path = ".".join([*path, name])
                raise ConfigError(
                    f'{self.prefix}strict decoding error: unknown field "{field_path}"',
                    hint="unknown fields are errors in the sealos-lab stand-in "
                    "(real kubeadm only warns about them)",
                )
            self.check(properties[name], item, [*path, name], own_struct)

    def _check_scalar(
        self, node: dict[str, Any], kind: str, value: Any, path: list[str], struct: str
    ) -> None:
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind == "string":
            if is_number and node.get("x-alsoAcceptsNumber"):
                return
            if not isinstance(value, str):
                self._type_error(node, value, path, struct)
            self._check_format(node, value, path)
        elif kind == "integer":
            if not (is_number and isinstance(value, int)):
                self._type_error(node, value, path, struct)
        elif kind == "number":
            if not is_number:
                self._type_error(node, value, path, struct)
        elif kind == "boolean" and not isinstance(value, bool):
            self._type_error(node, value, path, struct)

    def _check_format(self, node: dict[str, Any], value: str, path: list[str]) -> None:
        fmt = node.get("format")
        where = f" (field {'.'.join(path)})"
        if fmt == "duration" and parse_go_duration(value) is None:
            raise ConfigError(f'{self.prefix}time: invalid duration "{value}"{where}')
        if fmt == "date-time" and not _DATE_TIME_RE.match(value):
            raise ConfigError(
                f'{self.prefix}parsing time "{value}" as "2006-01-02T15:04:05Z07:00": '
                f"cannot parse as RFC3339{where}"
            )
        if fmt == "quantity" and not _QUANTITY_RE.match(value):
            raise ConfigError(
                f"{self.prefix}quantities must match the regular expression "
                f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'{where}"
            )

    def _type_error(self, node: dict[str, Any], value: Any, path: list[str], struct: str) -> None:
        name = path[-1].split("[")[0] if path else self.kind
        go_type = _go_type(node, name, self.version)
        field_path = ".".join(path)
        raise ConfigError(
            f"{self.prefix}json: cannot unmarshal {_json_type(value)} into Go struct field "
            f"{struct}.{field_path} of type {go_type}"
        )


class ApiCatalog:
    """The config API versions and kinds one Kubernetes release reads, with their schemas."""

    def __init__(self, schemas: dict[str, Any], version: KubeVersion) -> None:
        self.schemas = schemas
        self.version = version

    def accepted_kubeadm_versions(self) -> list[str]:
        """kubeadm.k8s.io/v1betaN versions this release reads, oldest first."""
        accepted = []
        for api_version, schema in sorted(self.schemas.items()):
            if not api_version.startswith(KUBEADM_GROUP + "/"):
                continue
            first, last = api_minor_range(schema)
            if first <= self.version.minor and (last is None or self.version.minor <= last):
                accepted.append(api_version)
        return accepted

    def deprecation_warning(self, api_version: str, kind: str) -> Optional[str]:
        """kubeadm's warning for a deprecated, still readable API (v1beta2 1.24+, v1beta3 1.31+)."""
        schema = self.schemas.get(api_version)
        if not schema or not api_version.startswith(KUBEADM_GROUP + "/"):
            return None
        deprecated = schema.get("kubernetesVersions", {}).get("deprecated")
        if api_version.endswith("/v1beta2"):
            deprecated = "1.24"
        if api_version.endswith("/v1beta1"):
            deprecated = None  # 1.17-1.21 marked it deprecated in docs only
        if deprecated and self.version.minor >= minor_number(deprecated):
            return (
                f'your configuration file uses a deprecated API spec: "{api_version}" '
                f'(kind: "{kind}"). Please use \'kubeadm config migrate --old-config old.yaml '
                "--new-config new.yaml', which will write the new, similar spec using a newer API "
                "version."
            )
        return None

    def schema_for(self, api_version: str, kind: str) -> dict[str, Any]:
        """The schema node of a kind, or ConfigError worded as kubeadm words a refusal."""
        not_registered = ConfigError(
            f'no kind "{kind}" is registered for version "{api_version}" in scheme "{_SCHEME_NAME}"'
        )
        if api_version in COMPONENT_APIS:
            if COMPONENT_APIS[api_version] != kind:
                raise not_registered
            return dict(self.schemas[api_version]["kinds"][kind])
        if not api_version.startswith(KUBEADM_GROUP + "/"):
            raise not_registered
        schema = self.schemas.get(api_version)
        too_old = False
        if schema is None:
            too_old = api_version in _OLD_KUBEADM_APIS and api_version.rsplit("/", 1)[1].startswith(
                "v1alpha"
            )
        else:
            first, last = api_minor_range(schema)
            if self.version.minor < first:
                raise not_registered
            too_old = last is not None and self.version.minor > last
        if too_old:
            use = _OLD_KUBEADM_APIS.get(api_version, "an older kubeadm")
            if api_version.endswith("/v1alpha3") and self.version.minor <= 14:
                use = "v1.13"
            kind_part = f' (kind: "{kind}")' if old_api_message_has_kind(self.version) else ""
            raise ConfigError(
                f'your configuration file uses an old API spec: "{api_version}"{kind_part}. '
                f"Please use kubeadm {use} instead and run 'kubeadm config migrate --old-config "
                "old.yaml --new-config new.yaml', which will write the new, similar spec using a "
                "newer API version."
            )
        if schema is None or kind not in schema["kinds"]:
            raise not_registered
        return dict(schema["kinds"][kind])


def decode_config(text: str, schemas: dict[str, Any], version: KubeVersion) -> DecodedConfig:
    """Every document of a kubeadm config file, checked strictly for the target release."""
    catalog = ApiCatalog(schemas, version)
    result = DecodedConfig()
    seen: set[tuple[str, str]] = set()
    for raw in load_yaml_documents(text):
        if not isinstance(raw, dict):
            raise ConfigError(
                f"error unmarshaling JSON: json: cannot unmarshal {_json_type(raw)} into Go value "
                "of type struct { APIVersion string; Kind string }"
            )
        api_version = raw.get("apiVersion")
        kind = raw.get("kind")
        if not isinstance(kind, str) or not kind:
            raise ConfigError(f"Object 'Kind' is missing in '{_compact(raw)}'")
        if not isinstance(api_version, str) or not api_version:
            raise ConfigError(f"Object 'apiVersion' is missing in '{_compact(raw)}'")
        group = api_version.rpartition("/")[0]
        if (group, kind) in seen:
            raise ConfigError(
                f'invalid configuration: kind "{kind}" is specified twice in YAML file'
            )
        seen.add((group, kind))
        schema = catalog.schema_for(api_version, kind)
        _Checker(api_version, kind, version).check(schema, raw, [], kind)
        warning = catalog.deprecation_warning(api_version, kind)
        if warning:
            result.warnings.append(warning)
        result.documents.append(ConfigDocument(api_version, kind, raw))
    return result


def _compact(raw: dict[str, Any]) -> str:
    text = yaml.safe_dump(raw, default_flow_style=True, width=1000).strip()
    return text if len(text) < 200 else text[:197] + "..."
