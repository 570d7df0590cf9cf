"""The benchmark's world: a seeded registry, a deployment, consents and assertions.

The request measured is Kanyashree's ``POST /verify-enrolment`` for applicant
girls whose guardians' consents are recorded: every step of the exchange runs
(assertion, access rule, purpose, request mapping, consent lookup, signing,
forwarding, the registry's signature check, release, response mapping, response
signature, message log). Direct and bare-proxy calls send the registry's own
canonical request for the same students.

Rate limits are raised far above the load in the benchmark's copy of the
configuration, so that the throttle runs but never refuses.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.load import Target
from gateway.auth import make_assertion
from gateway.demo.consents import record_consents
from gateway.demo.setup import DemoDeployment, free_port, prepare
from gateway.demo.traffic import KANYASHREE, STUDENTS
from registry_stub.seed import sample_students, seed_database

PURPOSE = "kanyashree-eligibility"
APPLICANTS = 64
#: Assertions live this long: a run must start within it after they are made.
ASSERTION_LIFETIME_S = 300


@dataclass
class World:
    """A prepared deployment and the students the load asks about."""

    demo: DemoDeployment
    students: list[dict[str, Any]]

    @property
    def root(self) -> Path:
        return self.demo.root

    def node_environ(
        self, state: Path, port: int, redis_url: str | None
    ) -> dict[str, str]:
        env = {**os.environ, **self.demo.environ()}
        env.update(
            {
                "MEDIATOR_STATE_DIR": str(state),
                "MEDIATOR_HOST": f"127.0.0.1:{port}",
                "MEDIATOR_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "MEDIATOR_CHECKPOINT_INTERVAL_S": "5",
                "MEDIATOR_LOG_LEVEL": "info",
            }
        )
        env.pop("MEDIATOR_REDIS_URL", None)
        if redis_url:
            env["MEDIATOR_REDIS_URL"] = redis_url
        return env

    def state_copy(self, name: str) -> Path:
        """A node's own state directory: keyring and consents, an empty log."""
        target = self.root / f"state-{name}"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(self.demo.state_dir, target)
        return target


def build(work: Path, *, students: int = 4000, schools: int = 40) -> World:
    """Seed the registry, lay out the deployment, record the consents."""
    work.mkdir(parents=True, exist_ok=True)
    db = work / "registry.db"
    seed_database(db, students=students, schools=schools)
    demo = prepare(work / "deployment", registry_db=db)
    _raise_rate_limits(demo.config_dir)
    chosen = sample_students(db, gender="F", classes=range(8, 13), limit=APPLICANTS)
    if not chosen:
        raise LookupError("the registry has no applicant girls in classes VIII-XII")
    record_consents(demo, [(s["student_id"], s, "active") for s in chosen])
    return World(demo, chosen)


def _raise_rate_limits(config_dir: Path) -> None:
    access = config_dir / "access.yaml"
    access.write_text(re.sub(r"(?m)^\s+rate: .*\n", "", access.read_text()))
    node = config_dir / "node.yaml"
    text = node.read_text()
    node.write_text(re.sub(r"default_rate: .*", "default_rate: 1000000/second", text))


def direct_target(world: World, url: str) -> Target:
    """The registry's canonical request, to the registry or through the bare proxy."""
    bodies = [
        orjson.dumps(
            {"student_id": s["student_id"], "date_of_birth": s["date_of_birth"]}
        )
        for s in world.students
    ]
    headers = {
        "Content-Type": "application/json",
        "X-Road-Client": str(KANYASHREE),
        "X-Mediator-Purpose": f"{PURPOSE}@1",
    }
    return Target(url, "/api/students/verify-enrolment", headers, bodies)


def mediator_target(world: World, url: str, tokens: Path) -> Target:
    """Kanyashree's own request through a node, one assertion per request."""
    bodies = [
        orjson.dumps(
            {
                "applicant": {
                    "registry_uid": s["student_id"],
                    "dob": _dd_mm_yyyy(s["date_of_birth"]),
                },
                "scheme_year": "2026-27",
            }
        )
        for s in world.students
    ]
    headers = {
        "Content-Type": "application/json",
        "X-Road-Client": str(KANYASHREE),
        "X-Road-Purpose": PURPOSE,
        "Host": url.removeprefix("http://"),
    }
    return Target(url, f"/r1/{STUDENTS}/verify-enrolment", headers, bodies, tokens)


def write_assertions(
    world: World, path: Path, count: int, *, lifetime_s: int = ASSERTION_LIFETIME_S
) -> Path:
    """``count`` fresh Kanyashree assertions, one a line."""
    with path.open("w") as handle:
        for _ in range(count):
            handle.write(assertion(world, lifetime_s=lifetime_s) + "\n")
    return path


def assertion(world: World, *, lifetime_s: int = ASSERTION_LIFETIME_S) -> str:
    """One fresh Kanyashree assertion."""
    return make_assertion(
        client_id=KANYASHREE,
        key=world.demo.client_keys[KANYASHREE],
        audience=world.demo.audience,
        lifetime_s=lifetime_s,
    )


def _dd_mm_yyyy(iso: str) -> str:
    year, month, day = iso.split("-")
    return f"{day}/{month}/{year}"


__all__ = ["World", "build", "free_port"]
