"""`sealos init`: connect, gather facts, validate, build the lvscare bundle, read the package
checksum, distribute the package, prepare hosts, init the first master, join masters, join nodes
(with lvscare), apply the CNI, save the state.

`run(spec, ui) -> Result` is what the CLI and the end-to-end tests call.
"""

from __future__ import annotations

from typing import Optional

from sealos import members, runner, validate
from sealos.context import Context
from sealos.phases.apply_cni import ApplyCNI
from sealos.phases.base import Phase
from sealos.phases.connect import Connect
from sealos.phases.distribute_package import DistributePackage
from sealos.phases.gather_facts import GatherFacts
from sealos.phases.init_master import InitFirstMaster
from sealos.phases.join_masters import JoinMasters
from sealos.phases.join_nodes import JoinNodes
from sealos.phases.lvscare_bundle import BuildLvscareBundle
from sealos.phases.mark_started import MarkStarted
from sealos.phases.package_checksum import FetchPackageChecksum
from sealos.phases.prepare_hosts import PrepareHosts
from sealos.phases.read_runtime import ReadRuntime
from sealos.phases.save_state import SaveState
from sealos.phases.validate import Validate
from sealos.runner import Result, Target
from sealos.spec import ClusterSpec
from sealos.state import StateStore
from sealos.ui import UI


class Init(runner.Action):
    """Install the cluster on the spec's hosts."""

    name = "init"
    changes_state = True

    def __init__(self, spec: ClusterSpec, store: StateStore, takeover: bool = False) -> None:
        self.spec = spec
        self.takeover = takeover
        self.store = store
        self.state = store.load()
        self.request_problems: list[str] = []  # flags and package: listed with the hosts' ones

    def problems(self, ctx: Context) -> list[str]:
        self.request_problems = validate.spec_problems(self.spec) + runner.read_package(ctx)
        # Without a master there is nobody to connect to for the rest of the checks.
        return self.request_problems if not self.spec.masters else []

    def targets(self, ctx: Context) -> list[Target]:
        return [Target(a, "master") for a in self.spec.masters] + [
            Target(a, "node") for a in self.spec.nodes
        ]

    def phases(self) -> list[Phase]:
        return [
            Connect(),
            GatherFacts(),
            Validate(
                [
                    lambda _ctx: self.request_problems,
                    validate.unreachable,
                    validate.facts_problems,
                    validate.lvscare_image_problems,
                    validate.another_cluster,
                    validate.foreign_kubernetes,
                    validate.cgroup_driver_problems,
                ],
                warnings=[validate.clock_warnings],
            ),
            BuildLvscareBundle(),
            FetchPackageChecksum(),
            SaveState(lambda ctx: members.record_install(ctx, "installing")),
            DistributePackage(),
            MarkStarted("sealos init"),
            PrepareHosts(),
            ReadRuntime(),
            Validate([validate.runtime_problems], title="Check the hosts for kubeadm"),
            InitFirstMaster(),
            JoinMasters(),
            JoinNodes(),
            ApplyCNI(),
            SaveState(lambda ctx: members.record_install(ctx, "ready")),
        ]

    async def conclude(self, ctx: Context, result: Result) -> None:
        if not ctx.dry_run:
            runner.summary(ctx, self)
            result.nodes_output = await runner.show_nodes(ctx)


def run(
    spec: ClusterSpec,
    ui: Optional[UI] = None,
    *,
    dry_run: bool = False,
    store: Optional[StateStore] = None,
    takeover: bool = False,
) -> Result:
    """Run `init` to the end (or to the first failure) and report; never raises for user errors
    found on hosts (they are in the Result), only SpecError for a bad key file. `takeover`
    (--force-takeover): install over a Kubernetes install sealos did not start (reset first)."""
    store = store or StateStore()
    store.lock(locked_as("init", spec))  # before Init reads the state
    try:
        action = Init(spec, store, takeover)
    except BaseException:
        store.unlock()
        raise
    return runner.run(action, ui, dry_run=dry_run)


def locked_as(command: str, spec: ClusterSpec) -> str:
    """How a second run names this one: the command and its hosts (no secrets)."""
    hosts = [f"--master {h}" for h in spec.masters] + [f"--node {h}" for h in spec.nodes]
    return " ".join(["sealos", command, *hosts])
