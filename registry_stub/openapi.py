"""The OpenAPI 3.1 document of the registry, as data.

Served unchanged at ``/api/openapi.json``; the mediator's ``getOpenAPI`` metaservice
passes it on. Paths are relative to the registry's root, so the ``students`` service
(base URL ``{registry}/api/students``) owns ``/api/students...`` and the ``schools``
service owns ``/api/schools...``.
"""

from __future__ import annotations

from typing import Any, Final

from registry_stub.openapi_schemas import SCHEMAS


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _path_param(name: str, pattern: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": pattern},
    }


def _query(
    name: str, schema: dict[str, Any], *, required: bool = False
) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


_STUDENT_ID = _path_param("student_id", "^WB[0-9]{12}$")
_UDISE = _path_param("udise_code", "^19[0-9]{9}$")
_PURPOSE = {
    "name": "X-Mediator-Purpose",
    "in": "header",
    "required": False,
    "description": "purpose-id@version; decides whether identity numbers are masked",
    "schema": {"type": "string"},
}
_DATE = {"type": "string", "format": "date"}

_PATHS: dict[str, Any] = {
    "/api/students": {
        "get": {
            "operationId": "listStudents",
            "summary": "Enrolled students of one class of a school",
            "parameters": [
                _query("udise_code", {"type": "string"}, required=True),
                _query(
                    "class",
                    {"type": "integer", "minimum": 0, "maximum": 12},
                    required=True,
                ),
                _query("section", {"type": "string"}),
                _query(
                    "management",
                    {
                        "type": "string",
                        "pattern": "^(government|aided|private)(,"
                        "(government|aided|private))*$",
                    },
                ),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 500, "default": 500},
                ),
                _query("offset", {"type": "integer", "minimum": 0, "default": 0}),
                _PURPOSE,
            ],
            "responses": {
                "200": _json(_ref("StudentList"), "The students"),
                **_errors(400),
            },
        },
        "post": {
            "operationId": "admitStudent",
            "summary": "Admit a new student; refuses a duplicate admission",
            "parameters": [_PURPOSE],
            "requestBody": _body(_ref("AdmissionRequest")),
            "responses": {
                "201": _json(_ref("Student"), "The admitted student"),
                **_errors(400, 409, 413, 422),
            },
        },
    },
    "/api/students/verify-enrolment": {
        "post": {
            "operationId": "verifyEnrolment",
            "summary": "Whether a student id is enrolled; an unknown id is not",
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["student_id"],
                    "properties": {
                        "student_id": {"type": "string"},
                        "date_of_birth": _DATE,
                        "window": {
                            "type": "object",
                            "required": [
                                "born_from",
                                "born_to",
                                "class_from",
                                "class_to",
                            ],
                            "properties": {
                                "born_from": _DATE,
                                "born_to": _DATE,
                                "class_from": {"type": "integer"},
                                "class_to": {"type": "integer"},
                            },
                        },
                    },
                }
            ),
            "responses": {
                "200": _json(_ref("EnrolmentVerification"), "The verification"),
                **_errors(400, 413, 422),
            },
        }
    },
    "/api/students/payment-status": {
        "post": {
            "operationId": "paymentStatus",
            "summary": "Which scholarship payments match an enrolled student's account",
            "requestBody": _body(_ref("PaymentBatch")),
            "responses": {
                "200": _json(_ref("PaymentReport"), "The report"),
                **_errors(400, 413, 422),
            },
        }
    },
    "/api/students/{student_id}": {
        "get": {
            "operationId": "getStudent",
            "parameters": [_STUDENT_ID, _PURPOSE],
            "responses": {
                "200": _json(_ref("Student"), "The student"),
                **_errors(400, 404),
            },
        }
    },
    "/api/students/{student_id}/promotion": {
        "post": {
            "operationId": "promoteStudent",
            "summary": "Record the year-end outcome: promoted or detained",
            "parameters": [_STUDENT_ID, _PURPOSE],
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["academic_year", "outcome"],
                    "properties": {
                        "academic_year": {
                            "type": "string",
                            "pattern": "^[0-9]{4}-[0-9]{2}$",
                        },
                        "outcome": {"enum": ["promoted", "detained"]},
                        "percentage": {"type": "number", "minimum": 0, "maximum": 100},
                    },
                }
            ),
            "responses": {
                "200": _json(_ref("Student"), "The student in the new year"),
                **_errors(400, 404, 409, 413, 422),
            },
        }
    },
    "/api/students/{student_id}/transfer": {
        "post": {
            "operationId": "transferStudent",
            "summary": "Move a student to another school; the student id is kept",
            "parameters": [_STUDENT_ID, _PURPOSE],
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["to_udise_code", "date"],
                    "properties": {"to_udise_code": {"type": "string"}, "date": _DATE},
                }
            ),
            "responses": {
                "200": _json(_ref("Student"), "The student at the new school"),
                **_errors(400, 404, 409, 413, 422),
            },
        }
    },
    "/api/students/{student_id}/bank-account/verify": {
        "post": {
            "operationId": "verifyBankAccount",
            "summary": "Compare an account number and IFSC with the record",
            "parameters": [_STUDENT_ID],
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["account_number", "ifsc"],
                    "properties": {
                        "account_number": {"type": "string"},
                        "ifsc": {"type": "string"},
                    },
                }
            ),
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["student_id", "account_matches", "ifsc_matches"],
                        "properties": {
                            "student_id": {"type": "string"},
                            "account_matches": {"type": "boolean"},
                            "ifsc_matches": {"type": "boolean"},
                        },
                    },
                    "The comparison",
                ),
                **_errors(400, 404, 413, 422),
            },
        }
    },
    "/api/schools": {
        "get": {
            "operationId": "listSchools",
            "parameters": [_query("district", {"type": "string"}, required=True)],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["schools"],
                        "properties": {
                            "schools": {"type": "array", "items": _ref("School")}
                        },
                    },
                    "Schools of the district",
                ),
                **_errors(400),
            },
        }
    },
    "/api/schools/{udise_code}": {
        "get": {
            "operationId": "getSchool",
            "parameters": [_UDISE],
            "responses": {
                "200": _json(_ref("School"), "The school"),
                **_errors(400, 404),
            },
        }
    },
    "/api/schools/{udise_code}/teachers": {
        "get": {
            "operationId": "listTeachers",
            "parameters": [_UDISE],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["udise_code", "teachers"],
                        "properties": {
                            "udise_code": {"type": "string"},
                            "teachers": {"type": "array", "items": _ref("Teacher")},
                        },
                    },
                    "Teachers of the school",
                ),
                **_errors(400, 404),
            },
        }
    },
    "/api/openapi.json": {
        "get": {
            "operationId": "getOpenAPI",
            "responses": {"200": {"description": "This document"}},
        }
    },
}

_ERROR_TEXT: Final = {
    400: "Malformed request (bad JSON, parameter or identifier)",
    404: "No such student or school",
    409: "Conflicts with the record (duplicate, not enrolled, wrong year)",
    413: "Request body too large",
    422: "A field is missing or not valid",
}

OPENAPI: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "BanglarShiksha central school registry",
        "version": "1.0.0",
        "description": "Students, schools and teachers of the state school registry.",
    },
    "paths": _PATHS,
    "components": {
        "schemas": SCHEMAS,
        "responses": {f"E{s}": _json(_ref("Error"), t) for s, t in _ERROR_TEXT.items()},
    },
}
