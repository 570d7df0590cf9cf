"""Time the adapter engine on a 30-field record, both ways; prints us per record.

Run: ``.venv/bin/python bench/bench_adapters.py``. Not part of the test run.
"""

from __future__ import annotations

import json
import tempfile
import timeit
from pathlib import Path

from adapters import AdapterSet
from gateway.identifiers import ClientId, ServiceId

CLIENT = "WB/GOV/BENCH/portal"
SERVICE = "WB/GOV/SED/banglarshiksha/students"
ROUNDS = 20_000

# 30 output fields each way: renames, nested pointers, tables, dates, constants.
REQUEST_FIELDS = {
    **{f"field_{i:02d}": f"/client/f{i:02d}" for i in range(20)},
    **{f"nested_{i}": f"/client/inner/n{i}" for i in range(4)},
    "gender": {"from": "/client/sex", "table": "sex"},
    "flag": {"from": "/client/flag", "table": "yes_no"},
    "date_of_birth": {
        "from": "/client/dob",
        "date": {"parse": "DD/MM/YYYY", "format": "YYYY-MM-DD"},
    },
    "joined": {
        "from": "/client/joined",
        "date": {"parse": "DD/MM/YYYY", "format": "YYYY-MM-DD"},
    },
    "source": {"const": "bench"},
    "missing": {"from": "/client/absent", "default": None},
}
RESPONSE_FIELDS = {
    **{f"f{i:02d}": f"/field_{i:02d}" for i in range(20)},
    **{f"n{i}": f"/nested_{i}" for i in range(4)},
    "sex": {"from": "/gender", "table": "sex_back"},
    "flag": {"from": "/flag", "table": "yn_back"},
    "dob": {
        "from": "/date_of_birth",
        "date": {"parse": "YYYY-MM-DD", "format": "DD/MM/YYYY"},
    },
    "joined": {
        "from": "/joined",
        "date": {"parse": "YYYY-MM-DD", "format": "DD/MM/YYYY"},
    },
    "source": "/source",
    "missing": {"from": "/missing", "on_null": "omit"},
}
TABLES = {
    "sex": {"entries": [["Female", "F"], ["Male", "M"], ["Transgender", "T"]]},
    "sex_back": {"entries": [["F", "Female"], ["M", "Male"], ["T", "Transgender"]]},
    "yes_no": {"entries": [["Y", True], ["N", False]]},
    "yn_back": {"entries": [[True, "Y"], [False, "N"]]},
}
RECORD = {
    "client": {
        **{f"f{i:02d}": f"value {i}" for i in range(20)},
        "inner": {f"n{i}": i for i in range(4)},
        "sex": "Female",
        "flag": "Y",
        "dob": "05/03/2012",
        "joined": "01/06/2019",
    }
}


def _schema(properties: dict[str, object]) -> dict[str, object]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
    }


def _write(root: Path, with_schemas: bool) -> None:
    directory = root / "bench"
    directory.mkdir()
    request: dict[str, object] = {"body": REQUEST_FIELDS}
    response: dict[str, object] = {"body": RESPONSE_FIELDS}
    if with_schemas:
        (directory / "client.json").write_text(
            json.dumps(_schema({"client": {"type": "object"}}))
        )
        (directory / "canonical.json").write_text(
            json.dumps(
                _schema({f"field_{i:02d}": {"type": "string"} for i in range(20)})
            )
        )
        request |= {"schema": "client.json", "canonical_schema": "canonical.json"}
        response |= {"canonical_schema": "canonical.json"}
    spec = {
        "name": "bench",
        "client": CLIENT,
        "service": SERVICE,
        "tables": TABLES,
        "endpoints": [
            {
                "name": "record",
                "match": {"method": "POST", "path": "/record"},
                "request": request,
                "response": response,
            }
        ],
    }
    (directory / "adapter.yaml").write_text(json.dumps(spec))


def _measure(with_schemas: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        _write(Path(tmp), with_schemas)
        adapters = AdapterSet.load(Path(tmp))
    endpoint = adapters.find(
        ClientId.parse(CLIENT), ServiceId.parse(SERVICE), "POST", "/record"
    )
    if endpoint is None:
        raise SystemExit("the bench adapter did not load")

    def both_ways() -> None:
        mapped = endpoint.map_request("POST", "/record", "", RECORD)
        endpoint.map_response(200, mapped.body)

    both_ways()
    best = min(timeit.repeat(both_ways, number=ROUNDS, repeat=5))
    return best / ROUNDS * 1e6


def main() -> None:
    print(f"mapping only, 30 fields each way:      {_measure(False):6.1f} us/record")
    print(f"mapping and schemas, 30 fields each way: {_measure(True):6.1f} us/record")


if __name__ == "__main__":
    main()
