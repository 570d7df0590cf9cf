"""The main job: seed, start, send departmental traffic, verify the log, stop.

Each stage prints what it did; any answer that is not the expected one, or a log
that does not verify, makes the run fail with a non-zero exit status.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from gateway.client import DepartmentClient
from gateway.demo import aikyashree, iosms, traffic
from gateway.demo.consents import node_keyring, record_consents, revoke_consents
from gateway.demo.evidence import LogCheckError, export_and_verify, verify_whole_log
from gateway.demo.setup import DemoDeployment, prepare
from gateway.directory import RegisteredKey
from gateway.identifiers import ClientId
from gateway.keyring import Keyring, SigningKey
from gateway.settings import UpstreamSettings
from gateway.upstream import make_client
from registry_stub.ids import make_student_id
from registry_stub.seed import roster_sizes, sample_students, seed_database

console = Console(width=110)
#: How many candidates of each kind the demo draws its samples from.
_POOL = 20_000


class DemoError(Exception):
    """A stage of the demo did not give the expected result."""


def main(work: Path, *, students: int, schools: int) -> int:
    """Run every stage; return the process exit status."""
    started = time.perf_counter()
    try:
        demo = _setup(work, students=students, schools=schools)
        plan = _plan(demo)
        with _processes(demo) as stop_mediator:
            outcomes = asyncio.run(_traffic(demo, plan))
            _print_table(outcomes)
            stop_mediator()
        _verify_log(demo, outcomes)
    except (DemoError, LogCheckError) as exc:
        console.print(f"[bold red]demo failed:[/] {exc}")
        return 1
    console.print(
        f"[bold green]demo passed[/] in {time.perf_counter() - started:.1f} s"
    )
    return 0


# -- stage 1: a registry and a deployment -----------------------------------------


def _setup(work: Path, *, students: int, schools: int) -> DemoDeployment:
    work.mkdir(parents=True, exist_ok=True)
    db = work / "registry.db"
    if db.exists():
        db.unlink()
    began = time.perf_counter()
    summary = seed_database(db, students=students, schools=schools)
    console.print(
        f"registry seeded: {summary.students} students, {summary.schools} schools, "
        f"{summary.teachers} teachers in {time.perf_counter() - began:.1f} s"
    )
    demo = prepare(work / "deployment", registry_db=db)
    demo.apply_environ()
    return demo


# -- stage 2: real servers on loopback ports ---------------------------------------


@contextmanager
def _processes(demo: DemoDeployment) -> Iterator[Any]:
    logs = demo.root / "logs"
    logs.mkdir(exist_ok=True)
    # Stopped in reverse order, the registry even when the mediator's start or
    # stop fails.
    with ExitStack() as running:
        registry = spawn_registry(demo)
        running.callback(stop, registry, "registry")
        mediator = spawn_mediator(demo)
        running.callback(stop, mediator, "mediator")

        def stop_mediator() -> None:
            stop(mediator, "mediator")

        wait_ready(f"{demo.registry_url}/api/openapi.json", registry, "registry")
        wait_ready(f"{demo.mediator_url}/admin/health", mediator, "mediator")
        console.print(
            f"registry on {demo.registry_url}, mediator on {demo.mediator_url} "
            f"(logs in {logs})"
        )
        yield stop_mediator


def spawn_registry(demo: DemoDeployment) -> subprocess.Popen[bytes]:
    """``registry-stub serve`` for the deployment, signing with its key."""
    return _spawn(
        [
            str(Path(sys.executable).parent / "registry-stub"),
            "serve",
            "--db",
            str(demo.registry_db),
            "--port",
            str(demo.registry_port),
            "--signing-key",
            str(demo.registry_key_file),
        ],
        {**os.environ, **demo.environ()},
        demo.root / "logs" / "registry.log",
    )


def spawn_mediator(
    demo: DemoDeployment,
    log_name: str = "mediator.log",
    *,
    options: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``mediator serve`` on the deployment's config, state and port, with
    ``options`` of ``serve`` and ``environ`` over the deployment's environment."""
    return _spawn(
        [
            str(Path(sys.executable).parent / "mediator"),
            "--config",
            str(demo.config_dir),
            "--state-dir",
            str(demo.state_dir),
            "serve",
            "--port",
            str(demo.mediator_port),
            *options,
        ],
        {**os.environ, **demo.environ(), **(environ or {})},
        demo.root / "logs" / log_name,
    )


def _spawn(
    argv: Sequence[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    # The child keeps its own copy of the file descriptor; ours is closed at once.
    with log.open("wb") as handle:
        return subprocess.Popen(  # noqa: S603 (our own entry points)
            argv, env=env, stdout=handle, stderr=subprocess.STDOUT
        )


def wait_ready(url: str, process: subprocess.Popen[bytes], name: str) -> None:
    """Poll ``url`` until it answers 200; raise DemoError if the process exits."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"{name} exited with status {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise DemoError(f"{name} did not become ready at {url}")


def stop(process: subprocess.Popen[bytes], name: str) -> None:
    """SIGTERM, then wait; raise DemoError if it does not stop in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise DemoError(f"{name} did not stop on SIGTERM") from None


# -- stage 3: departmental traffic --------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    applicants: list[tuple[str, dict[str, Any] | None, str]]
    rosters: dict[str, int]
    beneficiaries: list[tuple[dict[str, Any], bool]]
    aikyashree: aikyashree.Plan
    staff: dict[str, list[dict[str, Any]]]
    #: The Aikyashree consents by student id, to revoke one during the run.
    consent_ids: dict[str, str]
    keyring: Keyring


def _plan(demo: DemoDeployment) -> _Plan:
    """Who is asked about, from the registry's data; consents recorded before start.

    Every consent revision is signed with the node's keyring, as the node signs them.
    """
    keyring = node_keyring(demo)
    applicants = _applicants(demo, keyring)
    minority, consent_ids = _aikyashree(demo, keyring)
    plan = _Plan(
        applicants,
        _rosters(demo),
        _beneficiaries(demo),
        minority,
        iosms.staff_lists(demo.registry_db),
        consent_ids,
        keyring,
    )
    states = [state for _s, _d, state in plan.applicants]
    _print_consents("Kanyashree", states)
    _print_consents("Aikyashree", [a[2] for a in minority.consented()])
    console.print(f"every consent revision signed by the node's key {keyring.key_id}")
    return plan


def _print_consents(scheme: str, states: list[str]) -> None:
    revoked, withheld = states.count("revoked"), states.count("none")
    console.print(
        f"consents recorded for {len(states) - revoked - withheld} {scheme} "
        f"applicants ({withheld} without consent, {revoked} revoked)"
    )


async def _traffic(demo: DemoDeployment, plan: _Plan) -> list[traffic.Outcome]:
    http = make_client(UpstreamSettings(read_timeout_s=30, pool_size=64))
    try:
        clients = {
            cid: _client(demo, http, cid, key) for cid, key in demo.client_keys.items()
        }
        for client in clients.values():
            await client.load_node_keys()
        kanyashree = clients[traffic.KANYASHREE]
        saboojsathi = clients[traffic.SABOOJSATHI]
        ifms = clients[traffic.IFMS]
        minority = clients[aikyashree.AIKYASHREE]
        staff = clients[iosms.IOSMS]

        applicants = plan.applicants
        jobs = traffic.kanyashree_jobs(kanyashree, applicants)
        jobs += traffic.saboojsathi_jobs(saboojsathi, plan.rosters)
        jobs += traffic.ifms_jobs(ifms, plan.beneficiaries)
        jobs += aikyashree.jobs(minority, plan.aikyashree.applicants)
        jobs += iosms.jobs(staff, plan.staff)
        began = time.perf_counter()
        outcomes = await traffic.run_all(traffic.shuffled(jobs))
        elapsed = time.perf_counter() - began
        console.print(
            f"{len(outcomes)} departmental requests in {elapsed:.1f} s "
            f"({len(outcomes) / elapsed:.0f}/s, 16 at a time)"
        )

        def make(cid: ClientId, key: SigningKey) -> DepartmentClient:
            return _client(demo, http, cid, key, kanyashree.node_keys)

        hostile = traffic.hostile_jobs(kanyashree, saboojsathi, make, applicants[0][0])
        hostile += _revocation_jobs(demo, plan, minority)
        hostile += iosms.refused_jobs(staff)
        outcomes += await traffic.run_all(hostile, concurrency=1)
        return outcomes
    finally:
        await http.aclose()


def _revocation_jobs(
    demo: DemoDeployment, plan: _Plan, client: DepartmentClient
) -> list[tuple[str, traffic.Expectation, traffic.Call]]:
    """A guardian revokes an Aikyashree consent between two identical requests."""
    applicant = plan.aikyashree.revoked_in_run
    consent_id = plan.consent_ids[applicant[0]]

    async def revoke() -> None:
        await revoke_consents(demo, [consent_id], plan.keyring)

    return aikyashree.revocation_jobs(client, applicant, revoke)


def _client(
    demo: DemoDeployment,
    http: httpx.AsyncClient,
    cid: ClientId,
    key: SigningKey,
    node_keys: dict[str, RegisteredKey] | None = None,
) -> DepartmentClient:
    return DepartmentClient(
        client_id=cid,
        key=key,
        audience=demo.audience,
        base_url=demo.mediator_url,
        http=http,
        node_keys=node_keys,
    )


def _applicants(
    demo: DemoDeployment, keyring: Keyring
) -> list[tuple[str, dict[str, Any] | None, str]]:
    """500 Kanyashree applicants with their consent state; consents are recorded.

    Most are girls in classes VIII-XII (some outside the age window on the scheme's
    reference date), with boys, students no longer enrolled and unknown ids mixed
    in. Twenty eligible-looking girls have no consent and one guardian revoked it.
    """
    rng = random.Random(2026)  # noqa: S311 (synthetic demo data)
    db = demo.registry_db
    girls = _pick(
        rng, sample_students(db, gender="F", classes=range(8, 13), limit=_POOL), 470
    )
    boys = _pick(
        rng, sample_students(db, gender="M", classes=range(8, 13), limit=_POOL), 15
    )
    gone = _pick(
        rng, sample_students(db, classes=range(8, 13), enrolled=False, limit=_POOL), 10
    )
    chosen: list[tuple[str, dict[str, Any] | None]] = [
        (s["student_id"], s) for s in girls + boys + gone
    ]
    chosen += [(_unknown_id(rng, i), None) for i in range(500 - len(chosen))]
    states = ["active"] * len(chosen)
    withheld = rng.sample(range(len(girls)), 21)
    for index in withheld[:20]:
        states[index] = "none"
    states[withheld[20]] = "revoked"
    applicants = [
        (sid, doc, state) for (sid, doc), state in zip(chosen, states, strict=True)
    ]
    record_consents(demo, applicants, keyring=keyring)
    return applicants


def _aikyashree(
    demo: DemoDeployment, keyring: Keyring
) -> tuple[aikyashree.Plan, dict[str, str]]:
    """Aikyashree's applicants, with their guardians' consents recorded."""
    rng = random.Random(2027)  # noqa: S311 (synthetic demo data)
    try:
        plan = aikyashree.plan(demo.registry_db, rng)
    except LookupError as exc:
        raise DemoError(str(exc)) from exc
    consent_ids = record_consents(
        demo,
        [(sid, doc, state) for sid, doc, state, _dob in plan.consented()],
        client=aikyashree.AIKYASHREE,
        purpose_id=aikyashree.PURPOSE,
        actor="aikyashree-portal",
        keyring=keyring,
    )
    return plan, consent_ids


def _pick(rng: random.Random, found: list[dict[str, Any]], count: int) -> list[Any]:
    if len(found) < count:
        raise DemoError(f"the registry has only {len(found)} students of a kind")
    return rng.sample(found, count)


def _unknown_id(rng: random.Random, index: int) -> str:
    return make_student_id(2019, 9_000_000 + rng.randrange(900_000) + index)


def _rosters(demo: DemoDeployment) -> dict[str, int]:
    # SaboojSathi covers government and aided schools: a private one lists nobody.
    covered = frozenset({"government", "aided"})
    return roster_sizes(demo.registry_db, klass=9, limit=20, management=covered)


def _beneficiaries(demo: DemoDeployment) -> list[tuple[dict[str, Any], bool]]:
    students = sample_students(
        demo.registry_db, classes=range(5, 13), with_bank_account=True, limit=200
    )
    return [(student, index % 5 != 0) for index, student in enumerate(students)]


# -- stage 4: what the table says ---------------------------------------------------


def _print_table(outcomes: list[traffic.Outcome]) -> None:
    groups: dict[tuple[str, str, int, str], list[traffic.Outcome]] = defaultdict(list)
    for outcome in outcomes:
        key = (outcome.client, outcome.case, outcome.status, outcome.reason)
        groups[key].append(outcome)
    table = Table(title="Departmental traffic through the mediator")
    for column in ("client", "case", "status", "decision", "count", "p50 ms", "p99 ms"):
        numeric = column in ("count", "p50 ms", "p99 ms")
        # The case names wrap on a narrow terminal; every other cell stays whole.
        table.add_column(
            column, justify="right" if numeric else "left", no_wrap=column != "case"
        )
    table.add_column("as expected", justify="right", no_wrap=True)
    for (client, case, status, reason), rows in sorted(groups.items()):
        times = sorted(r.elapsed_ms for r in rows)
        good = sum(r.as_expected for r in rows)
        table.add_row(
            client,
            case,
            str(status),
            reason,
            str(len(rows)),
            f"{statistics.median(times):.1f}",
            f"{_p99(times):.1f}",
            f"{good}/{len(rows)}",
        )
    console.print(table)
    wrong = [o for o in outcomes if not o.as_expected]
    unsigned = [o for o in outcomes if not o.signature_ok]
    if unsigned:
        cases = sorted({f"{o.client}: {o.case}" for o in unsigned})
        raise DemoError(f"answers without a valid node signature: {cases}")
    if wrong:
        raise DemoError(f"{len(wrong)} answers were not the expected ones")
    console.print(
        f"all {len(outcomes)} answers as expected, every one signed by the node"
    )


def _p99(times: list[float]) -> float:
    return times[min(len(times) - 1, int(len(times) * 0.99))]


# -- stage 5: the security officer's view -------------------------------------------


def _verify_log(demo: DemoDeployment, outcomes: list[traffic.Outcome]) -> None:
    verify_whole_log(demo, expected_records=len(outcomes))
    export_and_verify(demo)
