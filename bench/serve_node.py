"""A mediator node for the benchmarks: uvicorn over ``gateway.app:app_from_env``.

The same server options as ``mediator serve`` (gateway.server.server_options);
``--workers N`` starts N worker processes, each building its own node from
``MEDIATOR_CONFIG`` and ``MEDIATOR_STATE_DIR``. Several workers need a message
log that several writers may share (PostgreSQL): each SQLite log has one writer.

``--off STEP[,STEP]`` switches steps of the exchange off in this process only
(bench.stepoff; one worker only), so that a run shows what each step costs.

Run: ``python -m bench.serve_node --port 8700 [--workers 2] [--off log,sign]``.
"""

from __future__ import annotations

import argparse

import uvicorn

from bench import stepoff
from gateway.server import server_options


def _steps(text: str) -> tuple[str, ...]:
    try:
        return stepoff.parse_steps(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--off",
        type=_steps,
        default=(),
        metavar="STEP[,STEP]",
        help=f"steps to switch off: {', '.join(stepoff.STEPS)}",
    )
    args = parser.parse_args()
    if args.off and args.workers != 1:
        # Worker processes import the app afresh: the patches would not reach them.
        parser.error("--off needs --workers 1")
    stepoff.switch_off(args.off)
    uvicorn.run(
        "gateway.app:app_from_env",
        factory=True,
        workers=args.workers,
        host="127.0.0.1",
        port=args.port,
        lifespan="on",
        **server_options(),
    )


if __name__ == "__main__":
    main()
