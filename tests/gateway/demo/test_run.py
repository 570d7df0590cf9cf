"""The demo's main job: its stages in order, its verdicts, and its child processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest

from gateway.demo import run
from gateway.demo.consents import node_keyring
from gateway.demo.evidence import LogCheckError
from gateway.demo.run import DemoError, stop, wait_ready
from gateway.demo.setup import DemoDeployment, free_port, prepare
from gateway.demo.traffic import Outcome
from registry_stub.ids import is_valid_student_id
from registry_stub.seed import seed_database

Applicant = tuple[str, dict[str, Any] | None, str]


class FakeProcess:
    """A child process that stops on SIGTERM, or only when killed."""

    def __init__(self, *, obeys_sigterm: bool = True) -> None:
        self.obeys_sigterm = obeys_sigterm
        self.returncode: int | None = None
        self.signals: list[int] = []
        self.killed = False

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        if self.obeys_sigterm:
            self.returncode = -sig

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            raise subprocess.TimeoutExpired("fake", timeout or 0)
        return self.returncode

    def kill(self) -> None:
        self.killed = True
        self.returncode = -signal.SIGKILL


def as_popen(process: FakeProcess) -> subprocess.Popen[bytes]:
    return cast("subprocess.Popen[bytes]", process)


def python(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A child process that runs until it is told to stop."""
    process = python("import time; time.sleep(60)")
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


@contextmanager
def health_server(statuses: list[int], served: list[int]) -> Iterator[str]:
    """A loopback HTTP server answering ``statuses`` in turn, then 200; its URL.

    Each status it answers is appended to ``served``.
    """
    answers = iter(statuses)

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.append(next(answers, 200))
            self.send_response(served[-1])
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads statuses, not the access log."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/admin/health"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- readiness -------------------------------------------------------------------------


def test_wait_ready_returns_once_the_url_answers_200(
    sleeper: subprocess.Popen[bytes],
) -> None:
    served: list[int] = []
    with health_server([503, 503], served) as url:
        wait_ready(url, sleeper, "mediator")

    assert served == [503, 503, 200]


def test_wait_ready_fails_when_the_process_exits_first() -> None:
    process = python("raise SystemExit(3)")
    process.wait()

    with pytest.raises(DemoError, match=r"^registry exited with status 3$"):
        wait_ready("http://127.0.0.1:9/api/openapi.json", process, "registry")


class Clock:
    """A monotonic clock that moves ten seconds each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 10
        return self.now

    def sleep(self, _seconds: float) -> None:
        return None


def test_wait_ready_gives_up_after_thirty_seconds(
    sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run, "time", Clock())
    url = f"http://127.0.0.1:{free_port()}/admin/health"

    with pytest.raises(DemoError, match=r"^mediator did not become ready at http"):
        wait_ready(url, sleeper, "mediator")


# -- stopping --------------------------------------------------------------------------


def test_stop_ends_a_running_process_with_sigterm(
    sleeper: subprocess.Popen[bytes],
) -> None:
    stop(sleeper, "registry")

    assert sleeper.returncode == -signal.SIGTERM


def test_stop_leaves_a_process_that_has_exited_alone() -> None:
    process = FakeProcess()
    process.returncode = 0

    stop(as_popen(process), "registry")

    assert process.signals == []


def test_a_process_that_ignores_sigterm_is_killed_and_the_demo_fails() -> None:
    process = FakeProcess(obeys_sigterm=False)

    with pytest.raises(DemoError, match=r"^mediator did not stop on SIGTERM$"):
        stop(as_popen(process), "mediator")
    assert process.signals == [signal.SIGTERM]
    assert process.killed


def run_servers(demo: DemoDeployment) -> None:
    """Start the servers, fail the traffic stage, and leave."""
    with run._processes(demo):
        raise DemoError("3 answers were not the expected ones")


def test_the_registry_is_stopped_even_when_the_mediator_does_not_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No child process outlives the run, whatever the first one did."""
    registry, mediator = FakeProcess(), FakeProcess(obeys_sigterm=False)
    monkeypatch.setattr(run, "spawn_registry", lambda _demo: as_popen(registry))
    monkeypatch.setattr(run, "spawn_mediator", lambda _demo: as_popen(mediator))
    monkeypatch.setattr(run, "wait_ready", lambda *_args: None)
    demo = prepare(tmp_path / "deployment", registry_db=tmp_path / "registry.db")

    with pytest.raises(DemoError, match=r"^mediator did not stop on SIGTERM$"):
        run_servers(demo)
    assert mediator.killed
    assert registry.signals == [signal.SIGTERM]


def test_the_registry_is_stopped_when_the_mediator_cannot_be_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = FakeProcess()

    def no_mediator(_demo: DemoDeployment) -> None:
        raise OSError("no mediator executable")

    monkeypatch.setattr(run, "spawn_registry", lambda _demo: as_popen(registry))
    monkeypatch.setattr(run, "spawn_mediator", no_mediator)
    demo = prepare(tmp_path / "deployment", registry_db=tmp_path / "registry.db")

    with pytest.raises(OSError, match="no mediator executable"):
        run_servers(demo)
    assert registry.signals == [signal.SIGTERM]


# -- the table's verdict ---------------------------------------------------------------


def outcome(
    case: str = "eligible",
    *,
    as_expected: bool = True,
    signed: bool = True,
    elapsed_ms: float = 4.0,
) -> Outcome:
    return Outcome("kanyashree", case, 200, "ok", elapsed_ms, as_expected, signed)


def test_a_run_with_every_answer_expected_and_signed_passes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run._print_table([outcome(elapsed_ms=float(ms)) for ms in range(1, 101)])

    printed = capsys.readouterr().out
    assert "all 100 answers as expected, every one signed by the node" in printed
    row = next(line for line in printed.splitlines() if "eligible" in line)
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[1:8] == ["kanyashree", "eligible", "200", "ok", "100", "50.5", "100.0"]
    assert cells[8] == "100/100"


def test_a_long_case_name_wraps_and_never_cuts_a_verdict(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The table is 110 columns wide: the verdict column must stay whole."""
    long_case = "encoded dot-segments to /export, the long way round"
    run._print_table([outcome(long_case) for _ in range(414)])

    printed = capsys.readouterr().out
    assert "414/414" in printed
    assert "…" not in printed


def test_an_answer_not_as_expected_fails_the_run() -> None:
    outcomes = [outcome(), outcome("boy", as_expected=False), outcome("boy")]

    with pytest.raises(DemoError, match=r"^1 answers were not the expected ones$"):
        run._print_table(outcomes)


def test_an_unsigned_answer_fails_the_run_and_names_its_case() -> None:
    """Checked before the expectations: an unsigned answer is never acceptable."""
    outcomes = [outcome("boy", as_expected=False), outcome("eligible", signed=False)]

    with pytest.raises(DemoError, match=r"signature: \['kanyashree: eligible'\]$"):
        run._print_table(outcomes)


@pytest.mark.parametrize(
    ("times", "p99"),
    [([7.0], 7.0), ([1.0, 2.0], 2.0), ([float(n) for n in range(1000)], 990.0)],
)
def test_p99_is_a_sample_at_or_above_the_99th_percentile(
    times: list[float], p99: float
) -> None:
    assert run._p99(times) == p99


# -- the order of the stages -----------------------------------------------------------


def stages(monkeypatch: pytest.MonkeyPatch, calls: list[str]) -> None:
    """Replace every stage of ``main`` by one that notes its name in ``calls``."""

    def note(name: str) -> Any:
        def stage(*_args: Any, **_kwargs: Any) -> None:
            calls.append(name)

        return stage

    @contextmanager
    def processes(_demo: Any) -> Iterator[Any]:
        calls.append("start servers")
        yield note("stop mediator")
        calls.append("stop servers")

    async def traffic(*_args: Any) -> list[Outcome]:
        calls.append("traffic")
        return []

    monkeypatch.setattr(run, "_setup", note("setup"))
    monkeypatch.setattr(run, "_plan", note("plan"))
    monkeypatch.setattr(run, "_processes", processes)
    monkeypatch.setattr(run, "_traffic", traffic)
    monkeypatch.setattr(run, "_print_table", note("table"))
    monkeypatch.setattr(run, "_verify_log", note("verify log"))


def test_the_log_is_verified_after_the_node_has_stopped(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls: list[str] = []
    stages(monkeypatch, calls)

    status = run.main(tmp_path, students=500, schools=20)

    assert status == 0
    assert calls == [
        "setup",
        "plan",
        "start servers",
        "traffic",
        "table",
        "stop mediator",
        "stop servers",
        "verify log",
    ]
    assert "demo passed" in capsys.readouterr().out


def test_a_failed_stage_ends_the_run_with_status_1(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls: list[str] = []
    stages(monkeypatch, calls)

    def table(_outcomes: list[Outcome]) -> None:
        raise DemoError("3 answers were not the expected ones")

    monkeypatch.setattr(run, "_print_table", table)

    status = run.main(tmp_path, students=500, schools=20)

    assert status == 1
    assert "verify log" not in calls
    printed = capsys.readouterr().out
    assert "demo failed: 3 answers were not the expected ones" in printed


def test_a_log_that_does_not_verify_ends_the_run_with_status_1(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The security officer's stage fails like any other, without a traceback."""
    stages(monkeypatch, [])

    def verify_log(*_args: Any) -> None:
        raise LogCheckError("499 final records for 500 requests")

    monkeypatch.setattr(run, "_verify_log", verify_log)

    status = run.main(tmp_path, students=500, schools=20)

    assert status == 1
    printed = capsys.readouterr().out
    assert "demo failed: 499 final records for 500 requests" in printed


# -- the Kanyashree applicants ---------------------------------------------------------


@pytest.fixture(scope="module")
def applicants(tmp_path_factory: pytest.TempPathFactory) -> list[Applicant]:
    """The applicants drawn from a registry of 4000 students, consents recorded."""
    root = tmp_path_factory.mktemp("demo")
    seed_database(root / "registry.db", students=4000, schools=40)
    demo = prepare(root / "deployment", registry_db=root / "registry.db")
    return run._applicants(demo, node_keyring(demo))


def kind(applicant: Applicant) -> str:
    _sid, doc, _state = applicant
    if doc is None:
        return "unknown"
    if doc["enrolment_status"] != "enrolled":
        return "not enrolled"
    return "girl" if doc["gender"] == "F" else "boy"


def test_applicants_are_mostly_girls_with_a_few_others(
    applicants: list[Applicant],
) -> None:
    assert Counter(kind(a) for a in applicants) == {
        "girl": 470,
        "boy": 15,
        "not enrolled": 10,
        "unknown": 5,
    }


def test_known_applicants_are_in_classes_viii_to_xii(
    applicants: list[Applicant],
) -> None:
    ids = [sid for sid, _doc, _state in applicants]

    assert len(set(ids)) == 500
    for _sid, doc, _state in applicants:
        assert doc is None or 8 <= doc["class"] <= 12


def test_unknown_applicants_have_valid_ids_the_registry_never_gave(
    applicants: list[Applicant],
) -> None:
    """A valid check digit: the registry answers "not enrolled", not a 4xx."""
    unknown = [sid for sid, doc, _state in applicants if doc is None]

    assert len(unknown) == 5
    for sid in unknown:
        assert is_valid_student_id(sid)
        assert int(sid[6:13]) >= 9_000_000


def test_twenty_girls_have_no_consent_and_one_had_it_revoked(
    applicants: list[Applicant],
) -> None:
    states = Counter(state for _sid, _doc, state in applicants)
    without = {kind(a) for a in applicants if a[2] != "active"}

    assert states == {"active": 479, "none": 20, "revoked": 1}
    assert without == {"girl"}


def test_a_registry_too_small_for_the_demo_fails_the_plan(tmp_path: Path) -> None:
    seed_database(tmp_path / "registry.db", students=300, schools=20)
    demo = prepare(tmp_path / "deployment", registry_db=tmp_path / "registry.db")

    with pytest.raises(DemoError, match=r"^the registry has only \d+ students of a"):
        run._applicants(demo, node_keyring(demo))
