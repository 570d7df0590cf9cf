"""The benchmark harness itself: a tiny load through real servers, and its summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import fixture
from bench.run import Bench, Run, summarise
from bench.topology import running


def _run(variant: str, rps: float, cpu: dict[str, float]) -> Run:
    return Run(variant, rps, 1.0, 5.0, 9.0, 0, False, cpu)


def test_summary_has_the_issue_figures() -> None:
    results = {
        "direct": _run("direct", 4000, {"registry": 150}),
        "bare-proxy": _run("bare-proxy", 2000, {"bare-proxy": 130}),
        "full": _run("full", 1000, {"node-a": 800}),
        "full-redis": _run("full-redis", 900, {"node-r": 900}),
        "2-nodes": _run("2-nodes", 1350, {"node-a": 480, "node-b": 480}),
    }
    half_node = Run("full", 500, 2.0, 7.5, 9.0, 0, False, {})
    half_direct = Run("direct", 500, 0.5, 1.5, 2.0, 0, False, {})

    figures = summarise(results, half_node, half_direct, redis=True)

    assert figures["full_vs_direct"] == 0.25
    assert figures["full_vs_bare_proxy"] == 0.5
    assert figures["p99_added_ms_at_half_load"] == 6.0
    assert figures["cpu_us_per_exchange"] == 800
    assert figures["two_process_speedup"] == 1.5
    assert figures["two_process_cpu_ratio"] == round(960 / 900, 3)


def test_benchmark_copy_of_the_config_never_throttles(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "access.yaml").write_text("rights:\n  - id: a\n    rate: '5/second'\n")
    (config / "node.yaml").write_text("limits:\n  default_rate: 200/second\n")

    fixture._raise_rate_limits(config)

    assert "rate:" not in (config / "access.yaml").read_text()
    assert "1000000/second" in (config / "node.yaml").read_text()


@pytest.mark.sockets
def test_a_short_run_through_a_node(tmp_path: Path) -> None:
    world = fixture.build(tmp_path / "bench", students=300, schools=4)

    with running(world, bare=False, nodes={"node-a": None}) as topology:
        bench = Bench(world, topology, None, tmp_path)
        full = bench.run("full", 1)

    assert full.rps > 0
    assert full.errors == 0
    assert not full.exhausted
    assert full.cpu_us["node-a"] > 0
    assert {"authenticate", "forward", "log"} <= set(full.steps_ms)
