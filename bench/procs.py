"""Child processes for the benchmarks: start, wait for, stop, and read /proc.

CPU time comes from ``/proc/<pid>/stat`` (utime + stime, in clock ticks) summed
over a process and its descendants, so that uvicorn worker processes count too;
resident memory from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A server did not start, or a run did not give usable figures."""


@dataclass
class Server:
    """A server process on a loopback port, with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def spawn(
    name: str, argv: Sequence[str], env: dict[str, str], log: Path, url: str
) -> Server:
    """Start ``argv`` with stdout and stderr to ``log``."""
    with log.open("ab") as handle:
        process = subprocess.Popen(
            list(argv), env=env, stdout=handle, stderr=subprocess.STDOUT
        )
    return Server(name, process, url, log)


def wait_ready(server: Server, path: str, timeout_s: float = 30) -> None:
    """Poll ``path`` until it answers 200; raise BenchError on exit or timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(f"{server.name} exited ({server.process.returncode})")
        try:
            if httpx.get(server.url + path, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{server.name} did not become ready (see {server.log})")


def stop(server: Server) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    if server.process.poll() is not None:
        return
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces; the fields after it are fixed.
    return text[text.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its descendants, in seconds."""
    ticks = 0
    for member in descendants(pid):
        fields = _stat_fields(member)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / TICKS_PER_S


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants, in KiB."""
    total = 0
    for member in descendants(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total
