"""``python -m bench.profile``: where a node's CPU goes under the full exchange load.

Starts the registry and one node (SQLite log, no Redis), drives the node with wrk
for ``BENCH_PROFILE_SECONDS`` (default 20), at ``BENCH_PROFILE_RATE`` requests/s
when set (else as fast as it answers), and samples it with py-spy (installed
from PyPI into the virtual environment; it needs ptrace on the node). Prints the
functions holding the most samples, inclusive and exclusive, and writes the
collapsed stacks to ``bench/out/profile.txt`` (for a flame graph tool).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench import fixture, load
from bench.procs import BenchError
from bench.topology import running

TOP = 30
#: The checkout's root, cut from py-spy's file paths.
_ROOT = f"{Path(__file__).resolve().parents[1]}/"

#: Shares of the node's CPU: a sample counts for the first category any of its
#: frames names (specific ones first); samples naming none are "other".
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("provider client (Upstream, transport, aiohttp)", ("Upstream.send",)),
    ("provider signature verify", ("verify_response",)),
    ("request signing", ("sign_request",)),
    ("client authentication (JWT)", ("ClientAuthenticator.authenticate",)),
    ("consent", ("ExchangePipeline._consent",)),
    ("adapters: request", ("ExchangePipeline._adapt_request",)),
    ("release and response mapping", ("ExchangePipeline._release",)),
    ("throttle and replay", ("Throttle.hit", "(gateway/replay.py)")),
    ("monitoring observe", ("Operations.observe",)),
    ("structlog line", ("(structlog/",)),
    ("log append and record", ("MessageLog.append", "ExchangeRecord.to_log")),
    ("log writer thread and sealing", ("(gateway/msglog/",)),
    ("answer (starlette Response)", ("Response.__call__",)),
    ("other pipeline steps", ("ExchangePipeline.run", "_run (gateway/app.py)")),
    ("exchange handler (app.py)", ("handle_exchange",)),
    ("HTTP server (uvicorn, httptools)", ("(uvicorn/",)),
)


def main() -> int:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise BenchError("py-spy is not installed (pip install py-spy)")
    seconds = int(os.environ.get("BENCH_PROFILE_SECONDS") or 20)
    work = Path(os.environ.get("BENCH_WORK", "var/profile")).resolve()
    out = Path("bench/out/profile.txt").resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    wrk = load.ensure_wrk()
    world = fixture.build(work)

    with running(world, bare=False, nodes={"node-a": None}) as topology:
        node = topology.nodes["node-a"]
        tokens = fixture.write_assertions(world, work / "tokens.txt", 2500 * seconds)
        target = fixture.mediator_target(world, node.url, tokens)
        rate = float(os.environ.get("BENCH_PROFILE_RATE") or 0)
        delay_ms = round(1000 * 32 / rate) if rate else 0
        generator = load.start(
            wrk,
            target,
            work,
            connections=32,
            seconds=seconds + 2,
            mean_delay_ms=delay_ms,
        )
        subprocess.run(
            [
                spy,
                "record",
                "--pid",
                str(node.pid),
                "--duration",
                str(seconds),
                "--rate",
                "250",
                "--gil",
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            check=True,
            capture_output=True,
        )
        result = load.finish(generator)
    print(f"{result.rps:.0f} requests/s under the profiler, errors {result.errors}")
    summarise(out)
    return 0


def summarise(path: Path) -> None:
    """Print the top functions of a collapsed-stack file."""
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        total += count
        exclusive[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"\n{total} samples; by category:")
    for name, count in _categories(path).most_common():
        print(f"  {count / total * 100:5.1f}%  {name}")
    print("\ninclusive (a function and what it calls):")
    for frame, count in inclusive.most_common(TOP):
        print(f"  {count / total * 100:5.1f}%  {frame}")
    print("\nexclusive (the function's own code):")
    for frame, count in exclusive.most_common(TOP):
        print(f"  {count / total * 100:5.1f}%  {frame}")


def _categories(path: Path) -> Counter[str]:
    shares: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        shares[_category([_short(f) for f in stack.split(";")])] += int(count_text)
    return shares


def _category(frames: list[str]) -> str:
    for name, markers in CATEGORIES:
        if any(marker in frame for frame in frames for marker in markers):
            return name
    return "other (event loop, asyncio, GC)"


def _short(frame: str) -> str:
    # py-spy writes "function (path/to/file.py:line)"; keep the function and file.
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].split("site-packages/")[-1]
    file = file.removeprefix(_ROOT)
    return f"{name} ({file})"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"profile failed: {exc}", file=sys.stderr)
        sys.exit(1)
