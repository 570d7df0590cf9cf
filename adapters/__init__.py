"""The mapping engine: declarative adapters between departmental and canonical schemas.

An integrator writes one ``adapter.yaml`` per (client subsystem, service) pair, with
JSON Schemas for both sides; :class:`AdapterSet` loads and compiles them once and
:class:`EndpointAdapter` maps each request and response. ``config/adapters/README.md``
describes the YAML.
"""

from __future__ import annotations

from adapters.endpoint import EndpointAdapter, MappedRequest
from adapters.engine import Adapter, AdapterSet
from adapters.examples import ExampleResult, run_examples

__all__ = [
    "Adapter",
    "AdapterSet",
    "EndpointAdapter",
    "ExampleResult",
    "MappedRequest",
    "run_examples",
]
