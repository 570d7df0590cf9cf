"""The dashboard draws its charts from live data, in headless Chromium."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest
import uvicorn
from PIL import Image

from gateway.admin.auth import Role, add_key
from gateway.identifiers import ClientId, ServiceId
from tests.gateway.conftest import KANYASHREE, SABOOJSATHI, Harness

pytestmark = [pytest.mark.anyio, pytest.mark.browser, pytest.mark.sockets]

SCHOOLS = ServiceId(ClientId("WB", "GOV", "SED", "banglarshiksha"), "schools")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BAR_RGB = (0x2F, 0x6F, 0xB3)  # .bar { fill: #2f6fb3 } in gateway/admin/static


async def test_the_dashboard_page_is_served_with_a_strict_policy(
    harness: Harness,
) -> None:
    answer = await harness.http.get(f"{harness.demo.mediator_url}/admin/dashboard/")

    assert answer.status_code == 200
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert '<svg id="chart-clients"' in answer.text


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium is not installed (apt-get install chromium); required in CI",
)
async def test_the_charts_draw_the_exchanges(harness: Harness, tmp_path: Path) -> None:
    await harness.client(SABOOJSATHI).call("GET", SCHOOLS, "/")
    await harness.client(KANYASHREE).call("GET", SCHOOLS, "/")
    key = add_key(harness.node.deployment.path("admin_keys.json"), Role.OPS)[1]
    port = harness.demo.mediator_port
    server = uvicorn.Server(
        uvicorn.Config(
            harness.app, host="127.0.0.1", port=port, lifespan="off", log_level="error"
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
            await asyncio.sleep(0.05)
        url = f"http://127.0.0.1:{port}/admin/dashboard/#key={key}"
        dom = await _chromium(url, tmp_path, "--dump-dom")
        shot = tmp_path / "dashboard.png"
        await _chromium(url, tmp_path, f"--screenshot={shot}")
    finally:
        server.should_exit = True
        await serving

    drawn = dict(re.findall(r'id="chart-(\w+)"[^>]*data-drawn="(\d+)"', dom))
    assert {name: int(n) for name, n in drawn.items()} == {
        "clients": 2,
        "services": 1,
        "denials": 1,
        "latency": 4,
        "keys": 1,
    }
    assert 'data-exchanges="2"' in dom
    assert dom.count('class="bar') >= 9
    # The screenshot shows the bars: pixels in the bar colour of dashboard.css.
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
    bar_pixels = sum(count for count, colour in colours if colour == BAR_RGB)
    assert bar_pixels > 500


async def _chromium(url: str, tmp_path: Path, action: str) -> str:
    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-extensions",
        "--disable-default-apps",
        "--no-default-browser-check",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--window-size=1200,1000",
        action,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return out.decode()
