"""Labs for tests: a context manager and a pytest fixture factory that always tear the lab down.

Example: `lab3 = lab_fixture("mytests", hosts=3)` at module level makes a module-scoped fixture
`lab3`; a test taking `lab3` gets a `Lab` whose `lab3.exec("h1", ["hostname"])` runs inside h1.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any, Optional

from sealos_lab.lab import Lab, down, up


@contextlib.contextmanager
def lab_session(
    name: str,
    hosts: int = 3,
    vm: bool = False,
    hostnames: Optional[Mapping[str, str]] = None,
    timeout: Optional[float] = None,
) -> Iterator[Lab]:
    """A fresh lab for the duration of the block; removed afterwards, also on failure. A lab of
    the same name left over by an earlier crashed run is removed first."""
    down(name)
    try:
        yield up(name, hosts, vm=vm, hostnames=hostnames, timeout=timeout)
    finally:
        down(name)


def lab_fixture(
    name: str,
    hosts: int = 3,
    vm: bool = False,
    hostnames: Optional[Mapping[str, str]] = None,
    scope: str = "module",
) -> Any:
    """A pytest fixture yielding a fresh lab (see `lab_session`); skips the test when not root."""
    import pytest

    @pytest.fixture(scope=scope)  # type: ignore[call-overload]
    def _lab() -> Iterator[Lab]:
        if os.geteuid() != 0:
            pytest.skip("lab hosts need root")
        with lab_session(name, hosts, vm=vm, hostnames=hostnames) as lab:
            yield lab

    return _lab
