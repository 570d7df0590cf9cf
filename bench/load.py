"""The load: wrk with a Lua script, or a Python generator in its own process.

Every mediator request needs its own client assertion (a ``jti`` is accepted once),
so assertions are made before a run and written to a file, one a line; the load
generator only reads them. A run that uses up its assertions says so
(``exhausted``), and its figures are not to be trusted.

Both generators print one line ``BENCH_JSON {...}`` with the request count, the
duration, latency percentiles in microseconds and the error counts.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import BenchError

_LUA = """
local method, path = "POST", %(path)s
local headers = %(headers)s
local bodies = %(bodies)s
local tokens = nil
local i = 0
local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  thread:set("exhausted", 0)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(tonumber(tid) * 7919)
  local file = args[1]
  if file == nil or file == "" then return end
  tokens = {}
  local n, nthreads = 0, tonumber(args[2])
  for line in io.lines(file) do
    if n %% nthreads == tonumber(tid) - 1 then tokens[#tokens + 1] = line end
    n = n + 1
  end
end

function request()
  i = i + 1
  local body = bodies[(i %% #bodies) + 1]
  if tokens == nil then return wrk.format(method, path, headers, body) end
  if i > #tokens then
    exhausted = 1
    wrk.thread:stop()
    i = 1
  end
  headers["Authorization"] = "Bearer " .. tokens[i]
  return wrk.format(method, path, headers, body)
end
%(delay)s
function done(summary, latency, requests)
  local exhausted = 0
  for _, thread in ipairs(threads) do
    exhausted = exhausted + (tonumber(thread:get("exhausted")) or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, ' ..
    '"p99_us": %%d, "p999_us": %%d, "errors_status": %%d, "errors_socket": %%d, ' ..
    '"exhausted": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), latency:percentile(99.9), e.status,
    e.connect + e.read + e.write + e.timeout, exhausted))
end
"""

_DELAY = """
function delay()
  return math.random(0, %d)
end
"""


@dataclass(frozen=True)
class Target:
    """What a load generator sends: one URL, fixed headers, bodies in turn."""

    url: str
    path: str
    headers: dict[str, str]
    bodies: list[bytes]
    tokens: Path | None = None


@dataclass
class LoadResult:
    """One generator's figures for one run, and its own CPU."""

    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    errors: int
    exhausted: bool
    generator_cpu_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def ensure_wrk() -> str | None:
    """The path of ``wrk``, installing the Debian package when root; else None."""
    found = shutil.which("wrk")
    if found or os.environ.get("BENCH_LOADGEN") == "python":
        return None if os.environ.get("BENCH_LOADGEN") == "python" else found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"],
            check=False,
            capture_output=True,
        )
    return shutil.which("wrk")


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid Lua string for ASCII text


def write_script(target: Target, work: Path, mean_delay_ms: int) -> Path:
    headers = ", ".join(
        f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in target.headers.items()
    )
    bodies = ", ".join(_lua_string(b.decode("ascii")) for b in target.bodies)
    delay = _DELAY % (2 * mean_delay_ms) if mean_delay_ms > 0 else ""
    script = _LUA % {
        "path": _lua_string(target.path),
        "headers": "{" + headers + "}",
        "bodies": "{" + bodies + "}",
        "delay": delay,
    }
    path = work / f"load-{abs(hash((target.url, target.path, delay)))}.lua"
    path.write_text(script)
    return path


def start(
    wrk: str | None,
    target: Target,
    work: Path,
    *,
    connections: int,
    seconds: float,
    mean_delay_ms: int = 0,
) -> subprocess.Popen[str]:
    """Start one generator against ``target``; collect it with :func:`finish`."""
    tokens = str(target.tokens) if target.tokens else ""
    if wrk is None:
        argv = [
            sys.executable,
            "-m",
            "bench.pyload",
            json.dumps(
                {
                    "url": target.url,
                    "path": target.path,
                    "headers": target.headers,
                    "bodies": [b.decode("ascii") for b in target.bodies],
                    "tokens": tokens,
                    "connections": connections,
                    "seconds": seconds,
                    "mean_delay_ms": mean_delay_ms,
                }
            ),
        ]
    else:
        script = write_script(target, work, mean_delay_ms)
        argv = [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            target.url,
            "--",
            tokens,
            "1",
        ]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(process: subprocess.Popen[str]) -> LoadResult:
    """Wait for a generator; parse its ``BENCH_JSON`` line; raise BenchError."""
    # The generator's own CPU: what the children reaped while waiting used.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    output, _ = process.communicate(timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    for line in output.splitlines():
        if line.startswith("BENCH_JSON "):
            figures = json.loads(line.removeprefix("BENCH_JSON "))
            break
    else:
        raise BenchError(f"the load generator gave no figures:\n{output[-2000:]}")
    return LoadResult(
        requests=int(figures["requests"]),
        duration_s=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        p999_ms=figures["p999_us"] / 1000,
        errors=int(figures["errors_status"]) + int(figures["errors_socket"]),
        exhausted=bool(figures["exhausted"]),
        generator_cpu_s=cpu,
    )
