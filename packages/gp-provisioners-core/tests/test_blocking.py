"""Named worker pools for blocking client libraries."""

from __future__ import annotations

import threading
import time

import pytest

from gp_provisioners_core import blocking
from gp_provisioners_core.testing import loop_ticks


@pytest.fixture(autouse=True)
def no_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocking, "_sizes", {})
    monkeypatch.setattr(blocking, "_pools", {})


async def test_calls_run_on_the_named_pool_while_the_loop_keeps_running() -> None:
    def slow_call(seconds: float, *, tag: str) -> str:
        time.sleep(seconds)
        return f"{tag} on {threading.current_thread().name}"

    async with loop_ticks() as ticks:
        result = await blocking.run_blocking("gp-test-api", slow_call, 0.3, tag="listed")
    assert result.startswith("listed on gp-test-api")
    assert ticks.count >= 5  # the loop ran while the call slept


async def test_exceptions_propagate_unchanged() -> None:
    def refuse() -> None:
        raise ConnectionRefusedError("daemon down")

    with pytest.raises(ConnectionRefusedError, match="daemon down"):
        await blocking.run_blocking("gp-test-api", refuse)


def test_a_pool_is_sized_once_and_a_conflicting_size_is_an_error() -> None:
    blocking.configure_pool("gp-test-api", 4)
    blocking.configure_pool("gp-test-api", 4)  # the same again is harmless
    with pytest.raises(blocking.PoolConfigurationError, match=r"already has 4 .* 8 was asked"):
        blocking.configure_pool("gp-test-api", 8)
    blocking.executor("gp-test-api")
    assert blocking.pool_size("gp-test-api") == 4


def test_first_use_fixes_the_default_size() -> None:
    blocking.executor("gp-test-sdk", default_workers=3)
    assert blocking.pool_size("gp-test-sdk") == 3
    with pytest.raises(blocking.PoolConfigurationError):
        blocking.configure_pool("gp-test-sdk", 5)


def test_a_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        blocking.configure_pool("gp-test-api", 0)
