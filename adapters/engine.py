"""The adapters of one deployment: loaded from ``config/adapters``, compiled once.

Each directory below the adapters directory holds one ``adapter.yaml`` and the JSON
Schemas it names. An adapter belongs to one (client subsystem, service) pair; at most
one adapter per pair. :meth:`AdapterSet.find` picks the endpoint adapter for an
exchange, or None when the payload is to pass untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adapters.compile import MappingCompiler, plain
from adapters.endpoint import EndpointAdapter, compile_endpoint
from adapters.schemas import SchemaLoader
from adapters.spec import UNION_TAGS, AdapterSpec, ExampleSpec
from gateway.errors import ConfigError, MediatorError
from gateway.identifiers import ClientId, ServiceId
from gateway.yamlconf import problems, read_yaml, validation_errors

ADAPTER_FILE = "adapter.yaml"


@dataclass(frozen=True, slots=True)
class Adapter:
    """The compiled adapter of one (client, service) pair, with its examples."""

    name: str
    file: Path
    client: ClientId
    service: ServiceId
    endpoints: tuple[EndpointAdapter, ...]
    examples: tuple[ExampleSpec, ...]

    def find(self, method: str, path: str) -> EndpointAdapter | None:
        """The first endpoint whose method and path pattern match, else None."""
        for endpoint in self.endpoints:
            if endpoint.matches(method, path) is not None:
                return endpoint
        return None


def load_adapter(file: Path) -> Adapter:
    """Read, validate and compile one ``adapter.yaml``; raise ConfigError.

    Every problem of the file is found before anything is raised: several raise
    :class:`~gateway.yamlconf.GroupedConfigError`, one problem for each bad field,
    endpoint or table.
    """
    document = read_yaml(file, expand_env=False)  # no environment in a mapping
    spec = _validate(document, file)
    compiler = MappingCompiler(file, document, spec.tables)
    collector = compiler.collector
    pair: list[tuple[ClientId, ServiceId]] = []
    with collector.attempt():
        pair.append(_identifiers(spec, compiler))
    schemas = SchemaLoader(file.parent)
    names: set[str] = set()
    endpoints: list[EndpointAdapter] = []
    for index, endpoint in enumerate(spec.endpoints):
        with collector.attempt():
            if endpoint.name in names:
                raise compiler.error(["endpoints", index, "name"], "name used twice")
            names.add(endpoint.name)
            endpoints.append(
                compile_endpoint(spec.name, index, endpoint, compiler, schemas)
            )
    for name in spec.tables:
        with collector.attempt():
            compiler.named_table(name, ["tables", name])
    collector.raise_any()
    client, service = pair[0]  # present: a failure was raised just above
    return Adapter(
        spec.name, file, client, service, tuple(endpoints), tuple(spec.examples)
    )


def _validate(document: Any, file: Path) -> AdapterSpec:
    """As :func:`gateway.yamlconf.validate` does, without union tags in the loc."""
    try:
        return AdapterSpec.model_validate(plain(document))
    except ValidationError as exc:
        raise validation_errors(exc, document, file, UNION_TAGS) from exc


def _identifiers(
    spec: AdapterSpec, compiler: MappingCompiler
) -> tuple[ClientId, ServiceId]:
    try:
        client = ClientId.parse(spec.client)
    except MediatorError as exc:
        raise compiler.error(["client"], "not a valid subsystem id") from exc
    try:
        service = ServiceId.parse(spec.service)
    except MediatorError as exc:
        raise compiler.error(["service"], "not a valid service id") from exc
    return client, service


class AdapterSet:
    """Every adapter of a deployment, by (client, service)."""

    def __init__(self, adapters: list[Adapter]) -> None:
        self._by_pair = {(a.client, a.service): a for a in adapters}

    @classmethod
    def load(cls, directory: Path) -> AdapterSet:
        """Load every ``*/adapter.yaml``; raise ConfigError at the first problem."""
        adapters = [load_adapter(file) for file in _files(directory)]
        _check_unique(adapters)
        return cls(adapters)

    @classmethod
    def check(cls, directory: Path) -> list[ConfigError]:
        """Every problem of each adapter file, then clashes between them."""
        try:
            files = _files(directory)
        except ConfigError as exc:
            return [exc]
        adapters: list[Adapter] = []
        errors: list[ConfigError] = []
        for file in files:
            try:
                adapters.append(load_adapter(file))
            except ConfigError as exc:
                errors.extend(problems(exc))
        try:
            _check_unique(adapters)
        except ConfigError as exc:
            errors.append(exc)
        return errors

    def find(
        self, client: ClientId, service: ServiceId, method: str, path: str
    ) -> EndpointAdapter | None:
        """The endpoint adapter for this exchange, or None to pass it untouched."""
        adapter = self._by_pair.get((client, service))
        if adapter is None:
            return None
        return adapter.find(method, path)

    def adapter(self, client: ClientId, service: ServiceId) -> Adapter | None:
        """The adapter of this (client, service) pair, if there is one."""
        return self._by_pair.get((client, service))

    def __iter__(self) -> Iterator[Adapter]:
        return iter(sorted(self._by_pair.values(), key=lambda a: a.name))

    def __len__(self) -> int:
        return len(self._by_pair)


def _files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise ConfigError(str(directory), "not a directory")
    return sorted(directory.glob(f"*/{ADAPTER_FILE}"))


def _check_unique(adapters: list[Adapter]) -> None:
    seen_names: dict[str, Path] = {}
    seen_pairs: dict[tuple[ClientId, ServiceId], Path] = {}
    for adapter in adapters:
        pair = (adapter.client, adapter.service)
        if adapter.name in seen_names:
            first = seen_names[adapter.name]
            raise ConfigError(str(adapter.file), f"adapter name also used in {first}")
        if pair in seen_pairs:
            first = seen_pairs[pair]
            raise ConfigError(
                str(adapter.file),
                f"{adapter.client} -> {adapter.service} also in {first}",
            )
        seen_names[adapter.name] = adapter.file
        seen_pairs[pair] = adapter.file
