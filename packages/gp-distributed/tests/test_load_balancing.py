"""HostSelector: round-robin, least-connection, cool-down, re-attached kernels."""

from __future__ import annotations

from collections import Counter

import pytest

from gp_distributed.load_balancing import HostSelector

HOSTS = ["h1", "h2", "h3"]


def test_round_robin_spreads_evenly() -> None:
    selector = HostSelector()
    picks = [selector.choose(HOSTS, "round-robin") for _ in range(30)]
    assert picks[:4] == ["h1", "h2", "h3", "h1"]
    assert Counter(picks) == {"h1": 10, "h2": 10, "h3": 10}
    assert [selector.live_kernels(h) for h in HOSTS] == [10, 10, 10]


def test_least_connection_fills_an_emptied_host_first() -> None:
    selector = HostSelector()
    for _ in range(30):
        selector.choose(HOSTS, "round-robin")
    for _ in range(10):
        selector.release("h3")
    picks = [selector.choose(HOSTS, "least-connection") for _ in range(12)]
    assert picks[:10] == ["h3"] * 10
    assert sorted(picks[10:]) == ["h1", "h2"]


def test_least_connection_breaks_ties_round_robin() -> None:
    selector = HostSelector()
    assert [selector.choose(HOSTS, "least-connection") for _ in range(6)] == HOSTS * 2


def test_cool_down_skips_a_host_until_it_ends() -> None:
    selector = HostSelector()
    selector.cool_down("h2", 60, now=100.0)
    assert selector.is_cooling("h2", now=159.0)
    assert not selector.is_cooling("h2", now=161.0)
    picks = [selector.choose(HOSTS, "round-robin", now=110.0) for _ in range(4)]
    assert "h2" not in picks
    assert selector.choose(["h2"], "round-robin", now=170.0) == "h2"


def test_every_host_cooling_and_bad_input_are_errors_naming_the_cause() -> None:
    selector = HostSelector()
    for host in HOSTS:
        selector.cool_down(host, 60, now=0.0)
    with pytest.raises(LookupError, match="cooling down after a failure: h1, h2, h3"):
        selector.choose(HOSTS, "round-robin", now=1.0)
    with pytest.raises(ValueError, match="'random' is unknown"):
        selector.choose(HOSTS, "random")
    with pytest.raises(LookupError, match="empty"):
        selector.choose([], "round-robin")


def test_release_never_goes_negative_and_attach_counts() -> None:
    selector = HostSelector()
    selector.release("h1")
    assert selector.live_kernels("h1") == 0
    selector.attach("h1")
    assert selector.live_kernels("h1") == 1
    assert selector.choose(HOSTS, "least-connection") == "h2"


def test_shared_instance_and_reset() -> None:
    first = HostSelector.shared()
    assert HostSelector.shared() is first
    fresh = HostSelector.reset_shared()
    assert fresh is not first
    assert HostSelector.shared() is fresh
