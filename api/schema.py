"""How the OpenAPI schema describes every operation: its success response from the view, and
the errors every endpoint may answer, so a client (and schemathesis) knows them all."""
from __future__ import annotations

from drf_spectacular import openapi

ERROR_SCHEMA = {
    "type": "object",
    "description": "What is wrong, and where: ``detail`` for the request as a whole, else one "
                   "list of messages per field (``data`` of a CRF: one per answer path, "
                   "e.g. ``weight_kg`` or ``events[1].grade``).",
    "additionalProperties": True,
}

ERRORS = {
    "400": "Invalid input: the messages name the field or path.",
    "401": "Not authenticated: send 'Authorization: Token <key>' or log in.",
    "403": "Authenticated, but your role may not do this here.",
    "404": "No such object, or one you may not see (another site's participant).",
}


# The database unreachable (``accounts.middleware.database_unavailable``): any operation may
# answer it, before or during its work. A write that was committed before the connection was
# lost may still have been done: reading the object again tells.
UNAVAILABLE = {
    "description": "The database cannot be reached: retry after the number of seconds in "
                   "Retry-After. Read the object again before repeating a write.",
    "headers": {"Retry-After": {"description": "Seconds to wait before retrying.",
                                "schema": {"type": "integer"}}},
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["detail"],
        "properties": {
            "detail": {"type": "string",
                       "description": "What happened, in the reader's language."},
            "outcome": {"type": "string", "enum": ["nothing_saved", "unknown", "saved"],
                        "description": "What became of the request's writes: rolled back "
                                       "(the connection was lost before COMMIT), unknown (lost "
                                       "during COMMIT: retry a randomisation with the same "
                                       "key, or read the object again), or saved (lost after "
                                       "it)."},
        },
    }}},
}


class AutoSchema(openapi.AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, description in ERRORS.items():
            responses.setdefault(code, {
                "description": description,
                "content": {"application/json": {"schema": ERROR_SCHEMA}}})
        responses.setdefault("503", UNAVAILABLE)
        return responses
