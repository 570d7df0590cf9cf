"""``make bench``: the mediator against the direct path and a bare proxy, one run.

Starts the registry, a bare aiohttp proxy (bench.bare_proxy) and mediator nodes,
then drives each with the same load (wrk, 32 connections, or bench.pyload when wrk
cannot be had), the variants alternating round by round:

- ``direct``      the registry itself;
- ``bare-proxy``  the registry behind the bare proxy;
- ``full``        one node, SQLite message log, no Redis (replay cache and rate
                  limits in the process);
- ``full-redis``  one node with Redis for replay and rate limits;
- ``2-nodes``     two separate nodes sharing Redis, each with its own SQLite log
                  and half the connections (no load balancer);
- ``full-pg``     one node, one uvicorn worker, PostgreSQL message log, Redis;
- ``2-workers-pg`` one node, two uvicorn workers (``gateway.app:app_from_env``)
                  writing one shared PostgreSQL log, Redis: with ``full-pg`` it
                  gives ``two_process_speedup`` and ``two_process_cpu_ratio``;
- ``off-<step>``  a node like ``full`` with one step of the exchange switched off
                  (bench.stepoff, ``bench.serve_node --off``): its CPU per
                  exchange against ``full`` is the step's cost, ``step_costs`` in
                  the JSON. ``off-all`` switches every chosen step off at once:
                  its CPU is the exchange's skeleton (``skeleton_cpu_us``, and
                  against the bare proxy's). ``BENCH_STEPOFF`` picks steps
                  (comma list, ``none``);
                  a step whose node does not answer the probe request with the
                  same status and body as ``full`` is dropped, with the reason.

The PostgreSQL variants run when Redis and PostgreSQL (``BENCH_POSTGRES_DSN``,
default the local server's ``postgres`` database; each node gets a fresh
database of its own) answer on loopback.

Then the node and the registry at half the node's capacity, for the p99 added
latency. Besides the CPU cost of each step (``off-<step>``), the ``steps_ms`` of
the node's own per-exchange log lines give each step's time, waiting included.
Figures go to ``BENCH_JSON`` (default ``bench/out/latest.json``);
``BENCH_QUICK=1`` makes a short run: one round of 5 s, the ``off-<step>`` variants
with 1 s warm-ups and 3 s windows (``BENCH_STEPOFF_SECONDS``).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench import fixture, load, stepoff
from bench.fixture import World
from bench.load import LoadResult, Target
from bench.procs import BenchError, Server, cpu_seconds
from bench.topology import (
    REDIS_URL,
    NodeSpec,
    Topology,
    fresh_database,
    postgres_available,
    redis_available,
    running,
)

console = Console(width=150)
QUICK = os.environ.get("BENCH_QUICK") == "1"
SECONDS = float(os.environ.get("BENCH_SECONDS") or (5 if QUICK else 15))
ROUNDS = int(os.environ.get("BENCH_ROUNDS") or (1 if QUICK else 3))
CONNECTIONS = 32
WARMUP_S = 2
POSTGRES_DSN = os.environ.get(
    "BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
#: The prefix of the variants (and nodes) with one step switched off.
OFF = "off-"
#: The variant with every chosen step switched off at once: what remains is the
#: exchange's skeleton (framing, routing, adapters, release, the provider call,
#: the answer), to compare with the bare proxy.
ALL = "all"
STEPOFF_SECONDS = float(
    os.environ.get("BENCH_STEPOFF_SECONDS") or (3 if QUICK else SECONDS)
)
STEPOFF_WARMUP_S = 1 if QUICK else WARMUP_S


@dataclass
class Run:
    """One variant's figures in one round."""

    variant: str
    rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    errors: int
    exhausted: bool
    cpu_us: dict[str, float]
    steps_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Bench:
    world: World
    topology: Topology
    wrk: str | None
    work: Path
    estimate: dict[str, float] = field(default_factory=dict)

    # -- one run ----------------------------------------------------------------------

    def targets(self, variant: str, seconds: float) -> list[tuple[Target, Server]]:
        """The generators' targets for a variant, with the server each one hits."""
        world, top = self.world, self.topology
        if variant == "direct":
            return [(fixture.direct_target(world, top.registry.url), top.registry)]
        if variant == "bare-proxy":
            bare = _required(top.bare)
            return [(fixture.direct_target(world, bare.url), bare)]
        names = (
            ["node-a", "node-b"]
            if variant == "2-nodes"
            else [_NODE.get(variant, variant)]
        )
        budget = int(self.estimate.get(variant, 3000) * seconds * 1.6) + 2000
        pairs = []
        for name in names:
            server = top.nodes[name]
            tokens = fixture.write_assertions(
                world, self.work / f"tokens-{name}.txt", budget
            )
            pairs.append((fixture.mediator_target(world, server.url, tokens), server))
        return pairs

    def run(self, variant: str, seconds: float, rate: float = 0.0) -> Run:
        """Drive one variant for ``seconds``; at ``rate`` requests/s when given."""
        pairs = self.targets(variant, seconds)
        servers = [self.topology.registry] + [s for _, s in pairs]
        if self.topology.bare is not None and variant == "bare-proxy":
            servers = [self.topology.registry, self.topology.bare]
        connections = CONNECTIONS // len(pairs)
        delay_ms = round(1000 * connections * len(pairs) / rate) if rate else 0
        offsets = {s.name: _size(s.log) for _, s in pairs}
        before = {s.name: cpu_seconds(s.pid) for s in servers}

        generators = [
            load.start(
                self.wrk,
                target,
                self.work,
                connections=connections,
                seconds=seconds,
                mean_delay_ms=delay_ms,
            )
            for target, _ in pairs
        ]
        results = [load.finish(g) for g in generators]

        after = {s.name: cpu_seconds(s.pid) for s in servers}
        total = sum(r.requests for r in results) or 1
        cpu = {name: (after[name] - before[name]) / total * 1e6 for name in before}
        cpu["load-generator"] = sum(r.generator_cpu_s for r in results) / total * 1e6
        steps = _steps([s for _, s in pairs], offsets)
        return _combine(variant, results, cpu, steps)

    def answer(self, node: str) -> tuple[int, bytes]:
        """Status and body of one benchmark request through ``node``."""
        server = self.topology.nodes[node]
        target = fixture.mediator_target(self.world, server.url, self.work)
        headers = {
            **target.headers,
            "Authorization": f"Bearer {fixture.assertion(self.world)}",
        }
        response = httpx.post(
            server.url + target.path,
            headers=headers,
            content=target.bodies[0],
            timeout=10,
        )
        return response.status_code, response.content

    def same_answers(self, variants: list[str]) -> tuple[list[str], dict[str, str]]:
        """The ``off-<step>`` variants whose node answers as ``full`` does, and
        why each other one was dropped."""
        expected = self.answer(_NODE["full"])
        kept, dropped = [], {}
        for variant in variants:
            status, body = self.answer(variant)
            if (status, body) == expected:
                kept.append(variant)
            elif status != expected[0]:
                dropped[variant] = f"answered {status}, full answers {expected[0]}"
            else:
                dropped[variant] = "answered another body than full"
        return kept, dropped


_NODE = {
    "full": "node-a",
    "full-redis": "node-r",
    "full-pg": "node-p1",
    "2-workers-pg": "node-p2",
}


def _required(server: Server | None) -> Server:
    if server is None:
        raise BenchError("the bare proxy is not running")
    return server


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _steps(servers: list[Server], offsets: dict[str, int]) -> dict[str, float]:
    """Mean ``steps_ms`` of the exchanges the servers logged since ``offsets``."""
    sums: dict[str, float] = defaultdict(float)
    count = 0
    for server in servers:
        with server.log.open("rb") as handle:
            handle.seek(offsets[server.name])
            for line in handle:
                if b'"exchange"' not in line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") != "exchange":
                    continue
                count += 1
                for step, ms in event.get("steps_ms", {}).items():
                    sums[step] += float(ms)
    return (
        {step: round(total / count, 3) for step, total in sums.items()} if count else {}
    )


def _combine(
    variant: str,
    results: list[LoadResult],
    cpu: dict[str, float],
    steps: dict[str, float],
) -> Run:
    return Run(
        variant=variant,
        rps=sum(r.rps for r in results),
        p50_ms=max(r.p50_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
        p999_ms=max(r.p999_ms for r in results),
        errors=sum(r.errors for r in results),
        exhausted=any(r.exhausted for r in results),
        cpu_us={k: round(v, 1) for k, v in cpu.items()},
        steps_ms=steps,
    )


# -- the whole benchmark ---------------------------------------------------------------


def _median_run(runs: list[Run]) -> Run:
    def med(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    names = sorted({name for r in runs for name in r.cpu_us})
    steps = sorted({step for r in runs for step in r.steps_ms})
    return Run(
        variant=runs[0].variant,
        rps=med([r.rps for r in runs]),
        p50_ms=med([r.p50_ms for r in runs]),
        p99_ms=med([r.p99_ms for r in runs]),
        p999_ms=med([r.p999_ms for r in runs]),
        errors=sum(r.errors for r in runs),
        exhausted=any(r.exhausted for r in runs),
        cpu_us={n: med([r.cpu_us.get(n, 0.0) for r in runs]) for n in names},
        steps_ms={s: med([r.steps_ms.get(s, 0.0) for r in runs]) for s in steps},
    )


def _window(variant: str) -> tuple[float, float]:
    """The warm-up and the measured seconds of a variant."""
    if variant.startswith(OFF):
        return STEPOFF_WARMUP_S, STEPOFF_SECONDS
    return WARMUP_S, SECONDS


def measure(bench: Bench, variants: list[str]) -> dict[str, Run]:
    """Warm each variant up, then alternate them for ROUNDS rounds."""
    for variant in variants:
        warm = bench.run(variant, _window(variant)[0])
        bench.estimate[variant] = max(warm.rps, 500.0)
        console.print(f"warm-up {variant}: {warm.rps:.0f} requests/s")
    runs: dict[str, list[Run]] = defaultdict(list)
    for round_no in range(ROUNDS):
        for variant in variants:
            run = bench.run(variant, _window(variant)[1])
            bench.estimate[variant] = max(run.rps, bench.estimate[variant])
            runs[variant].append(run)
            console.print(
                f"round {round_no + 1} {variant}: {run.rps:.0f} requests/s, "
                f"p99 {run.p99_ms:.1f} ms, errors {run.errors}"
            )
    return {variant: _median_run(r) for variant, r in runs.items()}


def main() -> int:
    work = Path(os.environ.get("BENCH_WORK", "var/bench")).resolve()
    out = Path(os.environ.get("BENCH_JSON", "bench/out/latest.json"))
    wrk = load.ensure_wrk()
    console.print(f"load generator: {wrk or 'bench.pyload (wrk not available)'}")
    world = fixture.build(work)
    redis = redis_available()
    nodes: dict[str, str | None] = {"node-a": None}
    variants = ["direct", "bare-proxy", "full"]
    postgres: dict[str, NodeSpec] = {}
    if redis:
        nodes.update({"node-r": REDIS_URL, "node-b": REDIS_URL})
        variants += ["full-redis", "2-nodes"]
    else:
        nodes["node-b"] = None
        variants += ["2-nodes"]
    if redis and postgres_available(POSTGRES_DSN):
        for name, workers in (("node-p1", 1), ("node-p2", 2)):
            dsn = fresh_database(POSTGRES_DSN, f"mediator_bench_{name[-2:]}")
            postgres[name] = NodeSpec(REDIS_URL, dsn, workers)
        variants += ["full-pg", "2-workers-pg"]
    steps = _stepoff_steps()
    off: dict[str, tuple[str, ...]] = {OFF + step: (step,) for step in steps}
    if len(steps) > 1:
        off[OFF + ALL] = steps
    nodes.update(dict.fromkeys(off))

    with running(world, bare=True, nodes=nodes, postgres=postgres, off=off) as topology:
        bench = Bench(world, topology, wrk, work)
        kept, dropped = bench.same_answers(list(off))
        for variant, reason in dropped.items():
            console.print(f"[yellow]dropped {variant}:[/] {reason}")
        results = measure(bench, variants + kept)
        half = results["full"].rps / 2
        half_node = bench.run("full", SECONDS, rate=half)
        half_direct = bench.run("direct", SECONDS, rate=half)

    figures = summarise(results, half_node, half_direct, redis=redis, dropped=dropped)
    print_table(results, half_node, half_direct)
    print_step_costs(results)
    write(out, figures, results, half_node, half_direct)
    console.print_json(json.dumps({k: v for k, v in figures.items() if k != "notes"}))
    return 0 if not any(r.exhausted for r in results.values()) else 1


def _stepoff_steps() -> tuple[str, ...]:
    """The steps ``BENCH_STEPOFF`` names (all when unset, none for ``none``)."""
    chosen = os.environ.get("BENCH_STEPOFF", "").strip()
    if chosen == "none":
        return ()
    if not chosen:
        return stepoff.STEPS
    try:
        return stepoff.parse_steps(chosen)
    except ValueError as exc:
        raise BenchError(f"BENCH_STEPOFF: {exc}") from exc


def summarise(
    results: dict[str, Run],
    half_node: Run,
    half_direct: Run,
    *,
    redis: bool,
    dropped: dict[str, str] | None = None,
) -> dict[str, Any]:
    full, direct, bare = results["full"], results["direct"], results["bare-proxy"]
    one = results["full-redis"] if redis else full
    two = results["2-nodes"]
    one_cpu = one.cpu_us["node-r" if redis else "node-a"]
    two_cpu = two.cpu_us["node-a"] + two.cpu_us["node-b"]
    figures = {
        "quick": QUICK,
        "request": "Kanyashree POST verify-enrolment, consent recorded",
        "full_vs_direct": round(full.rps / direct.rps, 3),
        "full_vs_bare_proxy": round(full.rps / bare.rps, 3),
        "p99_added_ms_at_half_load": round(half_node.p99_ms - half_direct.p99_ms, 2),
        "half_load_rps": round(half_node.rps, 1),
        "cpu_us_per_exchange": full.cpu_us["node-a"],
        "two_process_speedup": round(two.rps / one.rps, 3),
        "two_process_cpu_ratio": round(two_cpu / one_cpu, 3),
        "two_process_basis": "2-nodes vs "
        + ("full-redis" if redis else "full")
        + " (SQLite logs)",
        "two_nodes_speedup": round(two.rps / one.rps, 3),
        "two_nodes_cpu_ratio": round(two_cpu / one_cpu, 3),
        "postgres_log": "not measured: Redis or PostgreSQL not reachable",
        "notes": [
            "2-nodes: two separate nodes, each with its own SQLite log, sharing Redis"
            if redis
            else "2-nodes: two separate nodes without Redis (Redis not reachable)",
        ],
    }
    if "2-workers-pg" in results:
        figures.update(_postgres_figures(results, one))
    if any(v.startswith(OFF) for v in results) or dropped:
        figures.update(_step_figures(results, dropped or {}))
    return figures


def step_costs(results: dict[str, Run]) -> dict[str, dict[str, float]]:
    """Per step switched off: its node's figures and the CPU it saves per exchange
    against ``full`` (``saving_us = cpu(full) - cpu(off-<step>)``)."""
    full = results["full"]
    full_cpu = full.cpu_us[_NODE["full"]]
    costs = {}
    for variant, run in results.items():
        if not variant.startswith(OFF):
            continue
        cpu = run.cpu_us.get(variant, 0.0)
        costs[variant.removeprefix(OFF)] = {
            "rps": round(run.rps, 1),
            "rps_vs_full": round(run.rps / full.rps, 3) if full.rps else 0.0,
            "cpu_us": cpu,
            "saving_us": round(full_cpu - cpu, 1),
            "p99_ms": run.p99_ms,
            "errors": run.errors,
        }
    return costs


def _step_figures(results: dict[str, Run], dropped: dict[str, str]) -> dict[str, Any]:
    skeleton: dict[str, Any] = {}
    if OFF + ALL in results:
        cpu = results[OFF + ALL].cpu_us.get(OFF + ALL, 0.0)
        bare = results["bare-proxy"].cpu_us.get("bare-proxy", 0.0)
        skeleton = {
            "skeleton_cpu_us": cpu,
            "skeleton_vs_bare_proxy_cpu": round(cpu / bare, 3) if bare else None,
            "skeleton_basis": "node CPU us per exchange with every step of "
            "step_costs switched off at once (off-all), against the bare proxy's",
        }
    return {
        **skeleton,
        "step_costs": step_costs(results),
        "step_costs_basis": "node CPU us per exchange, full minus off-<step> "
        "(node-a: SQLite log, no Redis), medians over the rounds",
        "step_costs_window_s": STEPOFF_SECONDS,
        "step_costs_full_cpu_us": results["full"].cpu_us[_NODE["full"]],
        "step_costs_dropped": {
            variant.removeprefix(OFF): reason for variant, reason in dropped.items()
        },
    }


def _postgres_figures(results: dict[str, Run], sqlite_one: Run) -> dict[str, Any]:
    """The two-process figures from one node's 1 and 2 uvicorn workers sharing
    one PostgreSQL log (the workers' CPU is summed by process tree)."""
    one, two = results["full-pg"], results["2-workers-pg"]
    one_cpu, two_cpu = one.cpu_us["node-p1"], two.cpu_us["node-p2"]
    return {
        "two_process_speedup": round(two.rps / one.rps, 3),
        "two_process_cpu_ratio": round(two_cpu / one_cpu, 3),
        "two_process_basis": "uvicorn workers=2 vs 1, one shared PostgreSQL log",
        "postgres_log": {
            "rps": one.rps,
            "cpu_us_per_exchange": one_cpu,
            "vs_sqlite_redis_rps": round(one.rps / sqlite_one.rps, 3),
            "log_step_ms": one.steps_ms.get("log"),
        },
    }


def print_table(results: dict[str, Run], half_node: Run, half_direct: Run) -> None:
    direct, bare = results["direct"].rps, results["bare-proxy"].rps
    table = Table(title=f"Kanyashree verify-enrolment, {CONNECTIONS} connections")
    for column in ("variant", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    table.add_column("CPU us/exchange per process")
    table.add_column("vs direct", justify="right")
    table.add_column("vs bare", justify="right")
    rows = [
        *[run for name, run in results.items() if not name.startswith(OFF)],
        _renamed(half_node, "full @ half load"),
        _renamed(half_direct, "direct @ same rate"),
    ]
    for run in rows:
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in run.cpu_us.items())
        table.add_row(
            run.variant + (" (EXHAUSTED)" if run.exhausted else ""),
            f"{run.rps:.0f}",
            f"{run.p50_ms:.1f}",
            f"{run.p99_ms:.1f}",
            f"{run.p999_ms:.1f}",
            str(run.errors),
            cpu,
            f"{run.rps / direct:.2f}x",
            f"{run.rps / bare:.2f}x",
        )
    console.print(table)
    steps = results["full"].steps_ms
    console.print(
        "full exchange, mean ms per step (node log): "
        + ", ".join(f"{k} {v:.3f}" for k, v in steps.items())
    )


def print_step_costs(results: dict[str, Run]) -> None:
    """The ``off-<step>`` rows: the node's CPU per exchange and what each step costs."""
    costs = step_costs(results)
    if not costs:
        return
    full = results["full"]
    full_cpu = full.cpu_us[_NODE["full"]]
    table = Table(
        title=f"one step switched off ({STEPOFF_SECONDS:g} s windows): "
        "step cost us = cpu(full) - cpu(off)"
    )
    for column in ("variant", "req/s", "p99 ms", "errors", "node CPU us/exchange"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    table.add_column("step cost us", justify="right")
    table.add_column("share of full", justify="right")
    table.add_row(
        "full", f"{full.rps:.0f}", f"{full.p99_ms:.1f}", str(full.errors),
        f"{full_cpu:.0f}", "", "",
    )  # fmt: skip
    for step, cost in costs.items():
        table.add_row(
            OFF + step,
            f"{cost['rps']:.0f}",
            f"{cost['p99_ms']:.1f}",
            str(cost["errors"]),
            f"{cost['cpu_us']:.0f}",
            f"{cost['saving_us']:.0f}",
            f"{cost['saving_us'] / full_cpu:.0%}" if full_cpu else "",
        )
    console.print(table)


def _renamed(run: Run, variant: str) -> Run:
    return Run(**{**asdict(run), "variant": variant})


def write(
    out: Path,
    figures: dict[str, Any],
    results: dict[str, Run],
    half_node: Run,
    half_direct: Run,
) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        **figures,
        "seconds_per_run": SECONDS,
        "rounds": ROUNDS,
        "connections": CONNECTIONS,
        "variants": {name: asdict(run) for name, run in results.items()},
        "half_load": {"full": asdict(half_node), "direct": asdict(half_direct)},
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
    console.print(f"figures written to {out}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        console.print(f"[bold red]bench failed:[/] {exc}")
        sys.exit(1)
