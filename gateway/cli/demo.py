"""``mediator demo``: the main job, end to end on loopback."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("demo")
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/demo"),
    show_default=True,
    help="Where the registry, the deployment and the logs of the run go.",
)
@click.option("--students", default=20_000, show_default=True, type=click.IntRange(500))
@click.option("--schools", default=200, show_default=True, type=click.IntRange(20))
def command(work_dir: Path, students: int, schools: int) -> None:
    """Seed a registry, start it and a node, send traffic, verify the log."""
    from gateway.demo.run import main

    sys.exit(main(work_dir, students=students, schools=schools))
