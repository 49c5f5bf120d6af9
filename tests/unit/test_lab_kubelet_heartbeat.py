"""The stand-in kubelet's status update (no root): as the kubelet's updateNodeStatus it tries up to
five times at once and drops its connection after a failed try from the second on, so a retry
through the VIP can reach another apiserver instead of waiting for the next beat."""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Any, Optional, cast

import pytest

from sealos_lab.package.standin.apiclient import ApiClient, ApiError, ConnectError
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
    assert node.beat(cast(ApiClient, client), "https://apiserver.cluster.local:6443")
    assert client.calls == [("PUT", "/api/v1/nodes/n1/status")] * 2  # no wait in between
    assert client.closed == 1  # the retry went over a new connection


def test_refusals_drop_the_connection_from_the_second_try_on_and_stop_after_five():
    refusal = ApiError(500, "etcdserver: request timed out")
    client = FakeClient([refusal] * 10)
    node = agent()
    assert not node.beat(cast(ApiClient, client), "https://apiserver.cluster.local:6443")
    assert len(client.calls) == NODE_STATUS_UPDATE_RETRY == 5
    assert client.closed == NODE_STATUS_UPDATE_RETRY - 1  # onRepeatedHeartbeatFailure


def test_a_healthy_beat_is_one_call_on_the_kept_connection():
    client = FakeClient([])
    node = agent()
    assert node.beat(cast(ApiClient, client), "https://apiserver.cluster.local:6443")
    assert client.calls == [("PUT", "/api/v1/nodes/n1/status")] and client.closed == 0


def test_any_other_failure_is_a_failed_try_not_the_end_of_the_kubelet():
    client = FakeClient([RuntimeError("something unforeseen"), {"status": "Success"}])
    node = agent()
    assert node.beat(cast(ApiClient, client), "https://apiserver.cluster.local:6443")
    assert len(client.calls) == 2 and client.closed == 1


class CutShort:
    """A kept-alive connection whose answer ends mid-body (the apiserver's process ended)."""

    sock = None

    def request(self, *args: Any, **kwargs: Any) -> None:
        return None

    def getresponse(self) -> Any:
        raise http.client.IncompleteRead(b'{"status": "Succ', 4)

    def close(self) -> None:
        return None


def test_an_answer_cut_short_is_a_broken_connection():
    client = ApiClient("https://apiserver.cluster.local:6443", insecure=True, timeout=3.0)
    setattr(client, "_conn", CutShort())  # noqa: B010 (a fake in place of the connection)
    setattr(client, "_ip", "10.0.0.1")  # noqa: B010
    setattr(client, "ensure_connection", lambda: None)  # noqa: B010
    with pytest.raises(ConnectError) as caught:
        client.call("PUT", "/api/v1/nodes/n1/status", {"seq": 1})
    assert "unexpected EOF (IncompleteRead)" in str(caught.value)
    assert client._conn is None  # the next call connects again
