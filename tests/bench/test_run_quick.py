"""The benchmark harness itself: a tiny load through real servers, and its summary."""

from __future__ import annotations

import json
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


def _with_steps_off(**off: tuple[float, float]) -> dict[str, Run]:
    """Results of the base variants, and of ``off-<step>`` with (rps, cpu us)."""
    results = {
        "direct": _run("direct", 4000, {"registry": 150}),
        "bare-proxy": _run("bare-proxy", 2000, {"bare-proxy": 130}),
        "full": _run("full", 1000, {"node-a": 800}),
        "2-nodes": _run("2-nodes", 1350, {"node-a": 480, "node-b": 480}),
    }
    for step, (rps, cpu) in off.items():
        name = f"off-{step}"
        results[name] = _run(name, rps, {name: cpu})
    return results


def test_summary_gives_each_step_its_cost_against_full() -> None:
    results = _with_steps_off(log=(1250, 600), sign=(1000, 790))
    half = Run("full", 500, 2.0, 7.5, 9.0, 0, False, {})

    figures = summarise(
        results, half, half, redis=False, dropped={"off-consent": "answered 403"}
    )

    costs = figures["step_costs"]
    assert set(costs) == {"log", "sign"}
    assert costs["log"]["saving_us"] == 200
    assert costs["log"]["cpu_us"] == 600
    assert costs["log"]["rps"] == 1250
    assert costs["log"]["rps_vs_full"] == 1.25
    assert costs["sign"]["saving_us"] == 10
    assert figures["step_costs_full_cpu_us"] == 800
    assert figures["step_costs_dropped"] == {"consent": "answered 403"}
    assert json.loads(json.dumps(figures)) == figures


def test_every_step_off_at_once_gives_the_skeleton_against_the_bare_proxy() -> None:
    results = _with_steps_off(log=(1250, 600), all=(2100, 390))
    half = Run("full", 500, 2.0, 7.5, 9.0, 0, False, {})

    figures = summarise(results, half, half, redis=False)

    assert figures["skeleton_cpu_us"] == 390
    assert figures["skeleton_vs_bare_proxy_cpu"] == 3.0
    assert figures["step_costs"]["all"]["saving_us"] == 410
    assert "skeleton_cpu_us" not in summarise(
        {k: v for k, v in results.items() if k != "off-all"}, half, half, redis=False
    )


def test_summary_without_steps_switched_off_has_no_step_costs() -> None:
    results = {
        "direct": _run("direct", 4000, {"registry": 150}),
        "bare-proxy": _run("bare-proxy", 2000, {"bare-proxy": 130}),
        "full": _run("full", 1000, {"node-a": 800}),
        "2-nodes": _run("2-nodes", 1350, {"node-a": 480, "node-b": 480}),
    }
    half = Run("full", 500, 2.0, 7.5, 9.0, 0, False, {})

    assert "step_costs" not in summarise(results, half, half, redis=False)


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


@pytest.mark.sockets
def test_nodes_with_a_step_off_answer_as_full_does(tmp_path: Path) -> None:
    world = fixture.build(tmp_path / "bench", students=300, schools=4)
    nodes: dict[str, str | None] = dict.fromkeys(["node-a", "off-log", "off-sign"])
    off = {"off-log": ("log",), "off-sign": ("sign",)}

    with running(world, bare=False, nodes=nodes, off=off) as topology:
        bench = Bench(world, topology, None, tmp_path)
        kept, dropped = bench.same_answers(["off-log", "off-sign"])
        run = bench.run("off-log", 1)

    assert kept == ["off-log", "off-sign"]
    assert dropped == {}
    assert run.errors == 0
    assert run.cpu_us["off-log"] > 0
    log = topology.nodes["off-log"].log.read_text()
    assert "steps switched off in this process: log" in log
    assert "switched off" not in topology.nodes["node-a"].log.read_text()
