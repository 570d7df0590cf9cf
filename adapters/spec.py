"""The YAML form of an adapter, as pydantic models.

One ``adapter.yaml`` describes the mapping between one client subsystem's schema and
the canonical schema of one service. The models here only check shape; what needs
the whole document (table names, path templates, schema files) is checked when the
spec is compiled by :mod:`adapters.compile`. ``config/adapters/README.md`` is the
integrator's reference for every key.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from gateway.yamlconf import Strict

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
Scalar = str | int | float | bool | None
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]

DATE_TOKEN = re.compile(r"YYYY|MM|DD|[-/. ]")


def _shorthand(value: Any) -> Any:
    """A field given as a bare string is a source pointer: ``name: /a/b``."""
    if isinstance(value, str):
        return {"from": value}
    return value


class TableSpec(Strict):
    """A value table: ``entries`` of ``[from, to]`` pairs and an optional default."""

    entries: list[tuple[Scalar, Scalar]] = Field(min_length=1)
    default: Scalar = None

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set


class DateSpec(Strict):
    """A strict date conversion between two formats made of DD, MM and YYYY."""

    parse: str
    format: str

    @field_validator("parse", "format")
    @classmethod
    def _known_tokens(cls, value: str) -> str:
        parts = DATE_TOKEN.findall(value)
        if "".join(parts) != value:
            raise ValueError("a date format is DD, MM, YYYY and the separators - / . ")
        if sorted(p for p in parts if p[0] in "DMY") != ["DD", "MM", "YYYY"]:
            raise ValueError("a date format names DD, MM and YYYY once each")
        return value


class NumberSpec(Strict):
    """A number read in one form and written in another.

    Forms: ``number`` (a JSON number), ``plain`` (text such as ``1234567.50``),
    ``indian`` (text with Indian digit grouping, ``12,34,567.50``) and ``rupees``
    (Indian grouping after a rupee sign: ``\u20b912,34,567.50``; ``Rs.`` and ``INR``
    are read too). ``decimals`` rounds (half to even) to that many places first.
    """

    parse: Literal["number", "plain", "indian", "rupees"]
    format: Literal["number", "plain", "indian", "rupees"]
    decimals: int | None = Field(default=None, ge=0, le=6)


class SplitSpec(Strict):
    """Split a string (a name) at ``separator`` and take ``first``, ``last``, etc."""

    separator: str = Field(default=" ", min_length=1, max_length=8)
    take: Literal["first", "last", "rest", "initial", "all"]


class JoinSpec(Strict):
    """A source: the present parts at these pointers, joined with ``separator``."""

    parts: list[str] = Field(min_length=1, max_length=16)
    separator: str = Field(default=" ", max_length=8)


class WhenSpec(Strict):
    """A condition on a value of the same scope: the field is written only if true."""

    from_: str = Field(alias="from")
    equals: Scalar = None
    in_: list[Scalar] | None = Field(default=None, alias="in", min_length=1)
    present: bool | None = None

    @property
    def equals_given(self) -> bool:
        return "equals" in self.model_fields_set

    @model_validator(mode="after")
    def _one_test(self) -> WhenSpec:
        tests = self.equals_given + (self.in_ is not None) + (self.present is not None)
        if tests != 1:
            raise ValueError("when takes exactly one of equals, in, present")
        return self


class FieldSpec(Strict):
    """One output field: a source, optional transforms and the absent/null rules.

    Sources (exactly one): ``from`` (a JSON pointer into the body or the current list
    item), ``param`` (a client path parameter), ``query`` (a client query parameter),
    ``const``, ``join`` (parts joined into one string), or ``fields`` alone (an
    object built from the same scope). ``when`` writes the field only if its
    condition holds; at most one of ``table``, ``date``, ``number``, ``split``.
    """

    from_: str | None = Field(default=None, alias="from")
    param: str | None = None
    query: str | None = None
    const: Any = None
    join: JoinSpec | None = None
    fields: dict[str, Field_] | None = None
    each: dict[str, Field_] | None = None
    table: str | TableSpec | None = None
    date: DateSpec | None = None
    number: NumberSpec | None = None
    split: SplitSpec | None = None
    when: WhenSpec | None = None
    default: Any = None
    required: bool = False
    on_null: Literal["keep", "omit", "fail", "default"] = "keep"

    @property
    def has_const(self) -> bool:
        return "const" in self.model_fields_set

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        sources = [self.from_, self.param, self.query, self.join]
        count = sum(s is not None for s in sources) + self.has_const
        if count == 0 and self.fields is None:
            raise ValueError(
                "a field needs one of from, param, query, const, join, fields"
            )
        if count > 1:
            raise ValueError(
                "a field takes only one of from, param, query, const, join"
            )
        if self.each is not None and self.from_ is None:
            raise ValueError("each needs from: a pointer to the list")
        if self.each is not None and self.fields is not None:
            raise ValueError("a field takes each or fields, not both")
        transforms = [self.table, self.date, self.number, self.split]
        if sum(t is not None for t in transforms) > 1:
            raise ValueError("a field takes one of table, date, number, split")
        if self.on_null == "default" and not self.has_default:
            raise ValueError("on_null: default needs a default")
        return self


Field_ = Annotated[FieldSpec, BeforeValidator(_shorthand)]
Mapping = dict[str, Field_]
FieldSpec.model_rebuild()


def _word_or_mapping(value: Any) -> str:
    return "word" if isinstance(value, str) else "mapping"


# A keyword such as ``passthrough``, or a field mapping. The discriminator makes an
# error name the branch the integrator meant rather than both.
_AMapping = Annotated[Mapping, Tag("mapping")]
QueryChoice = Annotated[
    Annotated[Literal["passthrough", "drop"], Tag("word")] | _AMapping,
    Discriminator(_word_or_mapping),
]
RequestBody = Annotated[
    Annotated[Literal["passthrough", "none"], Tag("word")] | _AMapping,
    Discriminator(_word_or_mapping),
]
ResponseBody = Annotated[
    Annotated[Literal["passthrough"], Tag("word")] | _AMapping,
    Discriminator(_word_or_mapping),
]
#: Union tags that appear in a validation error's location but not in the YAML.
UNION_TAGS = frozenset({"word", "mapping"})


class MatchSpec(Strict):
    """Which client calls an endpoint adapter handles: a method and a path pattern."""

    method: Method
    path: str


class RequestSpec(Strict):
    """How a client request becomes a canonical request."""

    schema_: str | None = Field(default=None, alias="schema")
    canonical_schema: str | None = None
    digits: Literal["ascii"] | None = None
    params: dict[str, str] = Field(default_factory=dict)
    method: Method | None = None
    path: str | None = None
    path_params: Mapping = Field(default_factory=dict)
    query: QueryChoice = "passthrough"
    body: RequestBody = "passthrough"


class ResponseSpec(Strict):
    """How a canonical 2xx response body becomes the client's response body."""

    schema_: str | None = Field(default=None, alias="schema")
    canonical_schema: str | None = None
    body: ResponseBody = "passthrough"


class EndpointSpec(Strict):
    name: Name
    match: MatchSpec
    request: RequestSpec = Field(default_factory=RequestSpec)
    response: ResponseSpec = Field(default_factory=ResponseSpec)


class ExampleRequest(Strict):
    method: Method
    path: str
    query: str = ""
    body: Any = None


class ExampleResponse(Strict):
    status: int = Field(default=200, ge=100, le=599)
    body: Any = None


class ExpectedError(Strict):
    reason: str
    pointer: str | None = None


class ExampleSpec(Strict):
    """A worked example, run by ``mediator adapters test``."""

    name: str
    request: ExampleRequest
    canonical_request: ExampleRequest | None = None
    request_error: ExpectedError | None = None
    canonical_response: ExampleResponse | None = None
    response: Any = None

    @model_validator(mode="after")
    def _one_outcome(self) -> ExampleSpec:
        if (self.canonical_request is None) == (self.request_error is None):
            raise ValueError("an example has canonical_request or request_error")
        has_response = "response" in self.model_fields_set
        if (self.canonical_response is not None) != has_response:
            raise ValueError("canonical_response and response go together")
        return self


class AdapterSpec(Strict):
    """The whole ``adapter.yaml``."""

    name: Name
    description: str = ""
    client: str
    service: str
    tables: dict[str, TableSpec] = Field(default_factory=dict)
    endpoints: list[EndpointSpec] = Field(min_length=1)
    examples: list[ExampleSpec] = Field(default_factory=list)
