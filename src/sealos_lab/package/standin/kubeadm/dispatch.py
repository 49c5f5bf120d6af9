"""The kubeadm stand-in's command line: which subcommand runs, and how failures are printed."""

from __future__ import annotations

import json
import sys
import traceback
from typing import Optional

import yaml

from ..apiserver.server import apiserver_main
from ..cliflags import Flag, FlagError, ParsedFlags, parse_flags
from ..embedded import load_schemas
from ..hostenv import ServiceError, header_line, node_hostname
from ..pki import PkiError
from ..versions import (
    KubeVersion,
    default_cri_socket,
    deprecated_ha_aliases,
    version_info,
    version_info_struct,
)
from .common import STACK_HINT, KubeadmFailure, kube_version, load_config, out
from .flags import (
    init_flags,
    join_flags,
    mixed_flag_error,
    reset_flags,
    token_create_flags,
    token_flags,
    upload_certs_phase_flags,
)
from .init import run_init
from .init_config import build_init_plan
from .join import run_join
from .join_config import build_join_plan
from .phases import run_upload_certs_phase
from .plans import PlanError
from .preflight import detect_cri_socket
from .reset import run_reset
from .token import run_token_create, run_token_delete, run_token_list


def kubeadm_main(argv: list[str]) -> int:
    """Entry point of the kubeadm stand-in."""
    if argv[:1] == ["sealos-lab-apiserver"]:
        return apiserver_main(argv[1:])
    sys.stderr.write(header_line() + "\n")
    version = kube_version()
    words = _command_words(argv, version)
    try:
        if not words or words[0] in ("help",) or (not words and ("-h" in argv or "--help" in argv)):
            out(_usage())
            return 0
        command = words[0]
        rest = list(argv)
        rest.remove(command)
        if command == "init" and len(words) >= 3 and words[1] == "phase":
            if words[2] != "upload-certs":
                raise KubeadmFailure(
                    'the sealos-lab stand-in implements only the "upload-certs" phase, not '
                    f'"{words[2]}"'
                )
            rest.remove("phase")
            rest.remove("upload-certs")
            return run_upload_certs_phase(
                _config_flags(rest, upload_certs_phase_flags(version), version)
            )
        if command in ("init", "join"):
            parsed = _init_or_join_flags(command, rest, version)
            if parsed is None:
                return 0
            config = load_config(parsed)
            fallback = default_cri_socket(load_schemas()["flags"], version)
            defaults = (node_hostname(), lambda: detect_cri_socket(version.minor, fallback))
            if command == "init":
                return run_init(build_init_plan(parsed, config, version, *defaults))
            return run_join(build_join_plan(parsed, config, version, *defaults))
        if command == "token":
            sub = words[1] if len(words) > 1 else ""
            if sub:
                rest.remove(sub)
            if sub == "create":
                return run_token_create(_config_flags(rest, token_create_flags(version), version))
            if sub == "list":
                return run_token_list(parse_flags(rest, token_flags()))
            if sub == "delete":
                return run_token_delete(parse_flags(rest, token_flags()))
            raise KubeadmFailure(
                f'unknown command "{sub}" for "kubeadm token"'
                if sub
                else 'missing subcommand; "token" is not meant to be run on its own'
            )
        if command == "reset":
            return run_reset(parse_flags(rest, reset_flags(version)))
        if command == "version":
            return run_version(
                parse_flags(rest, {**token_flags(), "output": Flag("output", short="o")})
            )
        raise KubeadmFailure(
            f'unknown command "{command}" for "kubeadm"\nRun \'kubeadm --help\' for usage.'
        )
    except (FlagError, KubeadmFailure, PlanError, ServiceError, PkiError) as exc:
        sys.stderr.write(f"{exc}\n{STACK_HINT}\n")
        return 1
    except Exception as exc:  # a user sees one line, as from kubeadm; -v=5 shows the trace
        if _verbosity(argv) >= 5:
            traceback.print_exc()
        sys.stderr.write(f"{exc.__class__.__name__}: {exc}\n{STACK_HINT}\n")
        return 1


_ABOUT = {
    "init": "Run this command in order to set up the Kubernetes control plane",
    "join": "Run this on any machine you wish to join an existing cluster",
}


def _refuse_mixed_flags(parsed: ParsedFlags, version: KubeVersion) -> ParsedFlags:
    """parsed, unless it mixes --config with flags the config file should carry."""
    problem = mixed_flag_error(parsed, version)
    if problem:
        raise KubeadmFailure(problem)
    return parsed


def _config_flags(argv: list[str], table: dict[str, Flag], version: KubeVersion) -> ParsedFlags:
    """argv parsed by the flag table of a subcommand that takes --config."""
    return _refuse_mixed_flags(parse_flags(argv, table), version)


def _init_or_join_flags(
    command: str, argv: list[str], version: KubeVersion
) -> Optional[ParsedFlags]:
    """init's or join's flags; None when --help was asked for (and answered)."""
    table = init_flags(version) if command == "init" else join_flags(version)
    parsed = parse_flags(argv, table)
    if parsed.values.get("help"):
        out(_ABOUT[command])
        return None
    _deprecation_notes(parsed, version)
    if command == "init" and parsed.args:
        raise KubeadmFailure(f'unknown command "{parsed.args[0]}" for "kubeadm init"')
    return _refuse_mixed_flags(parsed, version)


def _command_words(argv: list[str], version: KubeVersion) -> list[str]:
    """Positional words of argv, skipping the values of flags that take one (as cobra does)."""
    specs: dict[str, Flag] = {}
    for table in (
        init_flags(version),
        join_flags(version),
        token_create_flags(version),
        token_flags(),
        reset_flags(version),
        upload_certs_phase_flags(version),
    ):
        specs.update(table)
    takes_value = {n for n, f in specs.items() if f.kind != "bool"}
    takes_value |= {f.short for f in specs.values() if f.short and f.kind != "bool"}
    words: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            words.extend(argv[index:])
            break
        if arg.startswith("-") and len(arg) > 1:
            name = arg.lstrip("-")
            if "=" not in name and name in takes_value:
                index += 1
            continue
        words.append(arg)
    return words


def _usage() -> str:
    return (
        "kubeadm (sealos-lab stand-in): easily bootstrap a secure Kubernetes cluster\n\n"
        "Usage:\n  kubeadm [command]\n\nAvailable Commands:\n"
        "  init        Run this command in order to set up the Kubernetes control plane\n"
        "  join        Run this on any machine you wish to join an existing cluster\n"
        "  reset       Performs a best effort revert of changes made to this host by 'kubeadm "
        "init' or 'kubeadm join'\n"
        "  token       Manage bootstrap tokens\n"
        "  version     Print the version of kubeadm\n"
    )


def _deprecation_notes(parsed: ParsedFlags, version: KubeVersion) -> None:
    for alias in deprecated_ha_aliases(version):
        if parsed.was_set(alias):
            new = alias.replace("experimental-", "")
            sys.stderr.write(f"Flag --{alias} has been deprecated, use --{new} instead\n")


def _verbosity(argv: list[str]) -> int:
    for index, arg in enumerate(argv):
        for prefix in ("--v=", "-v="):
            if arg.startswith(prefix) and arg[len(prefix) :].isdigit():
                return int(arg[len(prefix) :])
        if arg in ("-v", "--v") and index + 1 < len(argv) and argv[index + 1].isdigit():
            return int(argv[index + 1])
    return 0


def run_version(parsed: ParsedFlags) -> int:
    """kubeadm version [-o short|json|yaml]."""
    version = kube_version()
    output = parsed.values.get("output") or ""
    if output == "short":
        out(str(version))
    elif output == "json":
        out(json.dumps({"clientVersion": version_info(version)}, indent=2))
    elif output == "yaml":
        out(yaml.safe_dump({"clientVersion": version_info(version)}, sort_keys=False).rstrip())
    elif output == "":
        out(f"kubeadm version: &{version_info_struct(version)} (sealos-lab stand-in)")
    else:
        raise KubeadmFailure(f"invalid output format: {output}")
    return 0
