"""Static-pod lvscare's image (issue 11): the pod is privileged, so its image is never pulled by a
tag that can move. By tag it must be the package's copy (imagePullPolicy Never); pinned by digest
it may be pulled. A package whose manifest does not list the tagged image is refused before any
change, with the fix."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from sealos import spec as spec_mod
from sealos import validate
from sealos.addresses import parse_hosts
from sealos.context import Context
from sealos.kubeversion import KubeVersion
from sealos.logfile import CommandLog
from sealos.lvscare_node import static_pod_manifest
from sealos.package import PackageInfo
from sealos.redaction import Redactor
from sealos.state import StateStore
from sealos.ui import PlainUI

TAG = "docker.io/library/python:3.11-slim"
DIGEST = "docker.io/library/python@sha256:" + "ab" * 32


def pull_policy(image: str) -> str:
    pod = yaml.safe_load(static_pod_manifest("10.103.97.2", ["10.0.0.2"], image))
    return str(pod["spec"]["containers"][0]["imagePullPolicy"])


def test_a_tagged_image_is_never_pulled_a_pinned_one_may_be():
    assert pull_policy(TAG) == "Never"
    assert pull_policy(DIGEST) == "IfNotPresent"


def problems(tmp_path: Path, mode: str, image: str, images: list[str] | None) -> list[str]:
    spec = spec_mod.ClusterSpec(
        masters=parse_hosts(["10.0.0.2"]),
        nodes=parse_hosts(["10.0.0.5"]),
        version=KubeVersion.parse("v1.28.15"),
        lvscare_mode=mode,
        lvscare_image=image,
    )
    ctx = Context(
        spec, PlainUI(io.StringIO()), CommandLog(None, Redactor()), StateStore(tmp_path), None
    )
    ctx.package = PackageInfo(path="k.tar.gz", size=1, sha256="0" * 64, arch="amd64", images=images)
    return validate.lvscare_image_problems(ctx)


def test_a_tag_the_package_does_not_carry_is_refused_with_the_fix(tmp_path):
    (problem,) = problems(tmp_path, "static-pod", TAG, ["registry.k8s.io/pause:3.9"])
    assert TAG in problem and "--lvscare-image" in problem and "@sha256:" in problem
    assert "sealos package build" in problem


@pytest.mark.parametrize(
    "mode,image,images",
    [
        ("static-pod", TAG, ["registry.k8s.io/pause:3.9", TAG]),  # the package carries it
        ("static-pod", "python:3.11-slim", [TAG]),  # the same image, as containerd names it
        ("static-pod", DIGEST, ["registry.k8s.io/pause:3.9"]),  # pinned: may be pulled
        ("static-pod", TAG, None),  # no manifest (an old-shape package): its images.tar decides
        ("systemd", TAG, []),  # no pod at all
    ],
)
def test_what_may_run(tmp_path, mode, image, images):
    assert problems(tmp_path, mode, image, images) == []
