"""The data shapes of the registry's OpenAPI document (``components.schemas``).

Students, schools, teachers and the answers of the registry's verification and
report endpoints, as JSON Schema (OpenAPI 3.1). :mod:`registry_stub.openapi`
builds the document's paths around them.
"""

from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_DATE = {"type": "string", "format": "date"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "field": {"type": "string"},
            "existing_student_id": {"type": "string"},
        },
    },
    "Name": {
        "type": "object",
        "required": ["en", "bn"],
        "properties": {"en": {"type": "string"}, "bn": {"type": "string"}},
    },
    "Guardian": {
        "type": "object",
        "required": ["name", "relation", "phone"],
        "properties": {
            "name": {"type": "string"},
            "relation": {"enum": ["father", "mother", "guardian"]},
            "phone": {"type": "string", "pattern": "^\\+91[6-9][0-9]{9}$"},
        },
    },
    "BankAccount": {
        "type": ["object", "null"],
        "required": ["account_number", "ifsc", "holder_name"],
        "properties": {
            "account_number": {"type": "string"},
            "ifsc": {"type": "string", "pattern": "^[A-Z]{4}0[A-Z0-9]{6}$"},
            "holder_name": {"type": "string"},
        },
    },
    "LastExam": {
        "type": ["object", "null"],
        "required": ["year", "class", "result", "percentage"],
        "properties": {
            "year": {"type": "integer"},
            "class": {"type": "integer", "minimum": 0, "maximum": 12},
            "result": {"enum": ["pass", "fail"]},
            "percentage": {"type": ["number", "null"], "minimum": 0, "maximum": 100},
        },
    },
    "AdmissionRequest": {
        "type": "object",
        "required": [
            "name",
            "date_of_birth",
            "gender",
            "class",
            "udise_code",
            "guardian",
        ],
        "properties": {
            "name": _ref("Name"),
            "date_of_birth": _DATE,
            "gender": {"enum": ["F", "M", "T"]},
            "class": {"type": "integer", "minimum": 0, "maximum": 12},
            "section": {"type": "string", "pattern": "^[A-Z]{1,2}$"},
            "udise_code": {"type": "string", "pattern": "^19[0-9]{9}$"},
            "guardian": _ref("Guardian"),
            "social_category": {"enum": ["GEN", "SC", "ST", "OBC-A", "OBC-B"]},
            "minority": {"type": "boolean"},
            "religion": {
                "enum": [
                    "Hindu",
                    "Muslim",
                    "Christian",
                    "Sikh",
                    "Buddhist",
                    "Jain",
                    "Other",
                ]
            },
            "disability": {"type": "boolean"},
            "bank_account": _ref("BankAccount"),
            "aadhaar": {"type": ["string", "null"]},
            "last_exam": _ref("LastExam"),
        },
    },
    "Student": {
        "allOf": [
            _ref("AdmissionRequest"),
            {
                "type": "object",
                "required": [
                    "student_id",
                    "section",
                    "school_name",
                    "academic_year",
                    "enrolment_status",
                    "social_category",
                    "minority",
                    "religion",
                    "disability",
                    "bank_account",
                    "aadhaar",
                    "last_exam",
                ],
                "properties": {
                    "student_id": {"type": "string", "pattern": "^WB[0-9]{12}$"},
                    "school_name": {"type": "string"},
                    "academic_year": {
                        "type": "string",
                        "pattern": "^[0-9]{4}-[0-9]{2}$",
                    },
                    "enrolment_status": {
                        "enum": ["enrolled", "transferred_out", "left", "passed_out"]
                    },
                },
            },
        ]
    },
    "PaymentBatch": {
        "type": "object",
        "required": ["payments"],
        "properties": {
            "payments": {
                "type": "array",
                "minItems": 1,
                "maxItems": 500,
                "items": {
                    "type": "object",
                    "required": ["student_id", "account_number", "ifsc", "amount"],
                    "properties": {
                        "student_id": {"type": "string"},
                        "account_number": {"type": "string"},
                        "ifsc": {"type": "string"},
                        "amount": {"type": "number", "exclusiveMinimum": 0},
                    },
                },
            }
        },
    },
    "PaymentReport": {
        "type": "object",
        "properties": {
            "count": {"type": "integer"},
            "payable_count": {"type": "integer"},
            "total_payable": {"type": "number"},
            "payments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "student_id": {"type": "string"},
                        "enrolled": {"type": "boolean"},
                        "account_matches": {"type": "boolean"},
                        "ifsc_matches": {"type": "boolean"},
                        "amount": {"type": "number"},
                        "status": {"enum": ["payable", "held"]},
                    },
                },
            },
        },
    },
    "StudentList": {
        "type": "object",
        "required": ["udise_code", "class", "count", "students"],
        "properties": {
            "udise_code": {"type": "string"},
            "class": {"type": "integer"},
            "count": {"type": "integer"},
            "students": {"type": "array", "items": _ref("Student")},
        },
    },
    "EnrolmentVerification": {
        "type": "object",
        "required": ["student_id", "enrolled", "date_of_birth_matches"],
        "properties": {
            "student_id": {"type": "string"},
            "enrolled": {"type": "boolean"},
            "date_of_birth_matches": {"type": ["boolean", "null"]},
            "name": {"oneOf": [_ref("Name"), {"type": "null"}]},
            "gender": {"type": ["string", "null"]},
            "date_of_birth": {"type": ["string", "null"], "format": "date"},
            "class": {"type": ["integer", "null"]},
            "udise_code": {"type": ["string", "null"]},
            "school_name": {"type": ["string", "null"]},
            "academic_year": {"type": ["string", "null"]},
            "minority": {"type": ["boolean", "null"]},
            "religion": {"type": ["string", "null"]},
            "last_exam": _ref("LastExam"),
            "window": {
                "type": "object",
                "description": "Only when the request gave a window",
                "properties": {
                    "date_of_birth_in_window": {"type": ["boolean", "null"]},
                    "class_in_window": {"type": ["boolean", "null"]},
                },
            },
        },
    },
    "School": {
        "type": "object",
        "required": [
            "udise_code",
            "name",
            "district",
            "block",
            "management",
            "classes",
        ],
        "properties": {
            "udise_code": {"type": "string", "pattern": "^19[0-9]{9}$"},
            "name": {"type": "string"},
            "district": {"type": "string"},
            "block": {"type": "string"},
            "management": {"enum": ["government", "aided", "private"]},
            "classes": {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "integer"}],
                "minItems": 2,
                "maxItems": 2,
            },
        },
    },
    "Teacher": {
        "type": "object",
        "required": [
            "employee_id",
            "name",
            "designation",
            "subject",
            "date_of_joining",
            "udise_code",
        ],
        "properties": {
            "employee_id": {"type": "string", "pattern": "^WBT[0-9]{7}$"},
            "name": _ref("Name"),
            "designation": {"type": "string"},
            "subject": {"type": "string"},
            "date_of_joining": _DATE,
            "udise_code": {"type": "string"},
        },
    },
}
