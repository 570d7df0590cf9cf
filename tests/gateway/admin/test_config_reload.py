"""Reloading a node's configuration: checked first, swapped at once, or refused."""

from __future__ import annotations

import os
import signal

import anyio
import pytest

from gateway.admin import config as admin_config
from gateway.deployment import Deployment, ReloadRefusedError
from gateway.identifiers import ClientId, ServiceId
from tests.gateway.admin.test_consent import mount
from tests.gateway.conftest import SABOOJSATHI, Harness

pytestmark = pytest.mark.anyio

SCHOOLS = ServiceId(ClientId("WB", "GOV", "SED", "banglarshiksha"), "schools")


def _drop_schools_right(harness: Harness) -> None:
    file = harness.demo.config_dir / "access.yaml"
    text = file.read_text(encoding="utf-8")
    start = text.index("  - id: saboojsathi-schools")
    end = text.index("  - id:", start + 1)
    file.write_text(text[:start] + text[end:], encoding="utf-8")


async def test_a_reload_applies_to_the_next_exchange(harness: Harness) -> None:
    client = harness.client(SABOOJSATHI)
    before = await client.call("GET", SCHOOLS, "/", query={"district": "Nadia"})
    old = harness.node.pipeline
    _drop_schools_right(harness)

    await harness.node.reload()
    after = await client.call("GET", SCHOOLS, "/", query={"district": "Nadia"})

    assert before.status == 200
    assert harness.node.pipeline is not old
    assert after.status == 403


async def test_a_broken_config_never_replaces_the_running_one(
    harness: Harness,
) -> None:
    old = harness.node.pipeline
    access = harness.demo.config_dir / "access.yaml"
    access.write_text(access.read_text() + "\n  - id: [broken\n", encoding="utf-8")
    directory = harness.demo.config_dir / "directory.yaml"
    directory.write_text(directory.read_text().replace("instance: WB", "instance: 7"))

    with pytest.raises(ReloadRefusedError) as refused:
        await harness.node.reload()

    assert harness.node.pipeline is old
    files = {os.path.basename(e.file) for e in refused.value.errors}
    assert {"access.yaml", "directory.yaml"} <= files
    answer = await harness.client(SABOOJSATHI).call(
        "GET", SCHOOLS, "/", query={"district": "Nadia"}
    )
    assert answer.status < 400


async def test_an_unknown_client_in_access_yaml_is_reported_with_its_line(
    harness: Harness,
) -> None:
    access = harness.demo.config_dir / "access.yaml"
    text = access.read_text().replace(
        "client: WB/GOV/BCW/saboojsathi", "client: WB/GOV/BCW/nobody", 1
    )
    access.write_text(text, encoding="utf-8")

    with pytest.raises(ReloadRefusedError) as refused:
        await harness.node.reload()

    (error,) = refused.value.errors
    assert "WB/GOV/BCW/nobody is not in the directory" in error.reason
    assert error.line is not None


async def test_the_admin_endpoint_reloads_or_lists_every_error(
    harness: Harness,
) -> None:
    async with mount(harness, admin_config.routes()) as api:
        ok = await api.post("/admin/api/v1/config/reload")
        (harness.demo.config_dir / "purposes.yaml").write_text("purposes: 3\n")
        refused = await api.post("/admin/api/v1/config/reload")
        checked = await api.get("/admin/api/v1/config/check")

    assert ok.json()["reloaded"] is True
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["file"].endswith("purposes.yaml")
    assert checked.json()["valid"] is False


async def test_sighup_reloads(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = harness.node
    old, reload, done = node.pipeline, node.reload, anyio.Event()

    async def reload_and_tell() -> Deployment:
        try:
            return await reload()
        finally:
            done.set()

    monkeypatch.setattr(node, "reload", reload_and_tell)
    stop = admin_config.watch_reload_signal(node)
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        with anyio.fail_after(5):
            await done.wait()
    finally:
        stop()
    assert node.pipeline is not old
