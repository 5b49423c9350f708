"""The suite's own machinery, which keeps `make test` within its time (issue 11)."""

from __future__ import annotations

import pytest


@pytest.mark.xdist_group("suite_guard")
def test_loadgroup_keeps_an_xdist_group_on_one_worker(request: pytest.FixtureRequest) -> None:
    """`--dist loadgroup` sends a group to one worker by a suffix on each test's id. pytest 9.2
    dropped the suffix without a word (pytest-dev/pytest-xdist#1386): the groups were spread
    and every worker built the costly module fixtures (bench quick run, hostile database)."""
    if not request.config.getoption("loadgroup", default=False):  # set on xdist's workers
        pytest.skip("only under pytest-xdist with --dist loadgroup, as `make test` runs")
    assert request.node.nodeid.endswith("@suite_guard"), request.node.nodeid
