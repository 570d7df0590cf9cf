"""A mediator node for the benchmarks: uvicorn over ``gateway.app:app_from_env``.

The same server options as ``mediator serve`` (gateway.server.server_options);
``--workers N`` starts N worker processes, each building its own node from
``MEDIATOR_CONFIG`` and ``MEDIATOR_STATE_DIR``. Several workers need a message
log that several writers may share (PostgreSQL): each SQLite log has one writer.

Run: ``python -m bench.serve_node --port 8700 [--workers 2]``.
"""

from __future__ import annotations

import argparse

import uvicorn

from gateway.server import server_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
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
