"""The stand-in kubelet's status update (no root): as the kubelet's updateNodeStatus it tries up to
five times at once and drops its connection after a failed try from the second on, so a retry
through the VIP can reach another apiserver instead of waiting for the next beat."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from sealos_lab.package.standin.apiclient import ApiError, ConnectError
from sealos_lab.package.standin.kubelet_cmd import NODE_STATUS_UPDATE_RETRY, NodeAgent


class FakeClient:
    """Answers each call with the next of `outcomes` (an exception to raise, or a result)."""

    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes
        self.calls: list[tuple[str, str]] = []
        self.closed = 0
        self.connected = False

    def ensure_connection(self) -> None:
        self.connected = True

    def local_address(self) -> Optional[str]:
        return "10.0.0.9"

    def close(self) -> None:
        self.closed += 1
        self.connected = False

    def call(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append((method, path))
        outcome = self.outcomes.pop(0) if self.outcomes else {"status": "Success"}
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def agent() -> NodeAgent:
    node = NodeAgent("n1", Path("/nonexistent/kubelet.conf"), "10.0.0.9")
    node.registered = True
    return node


def test_a_dead_apiserver_is_left_within_the_same_beat():
    gone = ConnectError("timeout", "apiserver.cluster.local", 6443, "read tcp: i/o timeout")
    client = FakeClient([gone, {"status": "Success"}])
    node = agent()
    assert node.beat(client, "https://apiserver.cluster.local:6443")
    assert client.calls == [("PUT", "/api/v1/nodes/n1/status")] * 2  # no wait in between
    assert client.closed == 1  # the retry went over a new connection


def test_refusals_drop_the_connection_from_the_second_try_on_and_stop_after_five():
    refusal = ApiError(500, "etcdserver: request timed out")
    client = FakeClient([refusal] * 10)
    node = agent()
    assert not node.beat(client, "https://apiserver.cluster.local:6443")
    assert len(client.calls) == NODE_STATUS_UPDATE_RETRY == 5
    assert client.closed == NODE_STATUS_UPDATE_RETRY - 1  # onRepeatedHeartbeatFailure


def test_a_healthy_beat_is_one_call_on_the_kept_connection():
    client = FakeClient([])
    node = agent()
    assert node.beat(client, "https://apiserver.cluster.local:6443")
    assert client.calls == [("PUT", "/api/v1/nodes/n1/status")] and client.closed == 0
