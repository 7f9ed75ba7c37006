"""What the OpenAPI document says each route answers: its success, the errors it can answer in our shape
(`{"error": {"code", "message"}}`), and the headers that come with them. Routes declare these with
`responses=`; nothing here runs per request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from imgflow.api_models import ErrorResponse, UnauthorizedResponse

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

_JSON = "application/json"
_ERRORS = {
    400: "invalid_request, empty_file or chain_too_long: the request cannot be served as sent",
    401: "unauthorized: no token, or one API Gateway's JWT authorizer refuses (see WWW-Authenticate)",
    403: "forbidden: the token lacks a scope the request needs (AI edits need EditScope)",
    404: "not_found: no such job or webhook for this caller (another owner's is a 404 too)",
    409: "conflict: the job cannot take this change (an edit of a rejected job), or the owner has all its webhooks",
    413: "too_large_bytes: the announced file is larger than MaxUploadBytes",
    429: "quota_exceeded: a quota of the caller (or everyone's AI edit quota) is used up",
}
# The request bodies that announce a file's `size`.
_SIZED_MODELS = ("UploadRequest", "BatchFile")
_RATELIMIT_HEADERS: dict[str, Any] = {
    "RateLimit": {
        "description": 'What is left of each quota the request charged: "name";r=remaining;t=seconds to reset',
        "schema": {"type": "string"},
    },
    "RateLimit-Policy": {
        "description": 'The quotas the request charged: "name";q=limit;w=window seconds',
        "schema": {"type": "string"},
    },
}


def responses(
    status: int, description: str, model: Any, *errors: int, limited: bool = False
) -> dict[int, OpenAPIResponse]:
    """The `responses=` of a route: `status` with `model`, then each of `errors` (and 401: every documented
    route needs a token), with the RateLimit fields and a 429 where the route charges quotas."""
    success: OpenAPIResponse = {"description": description}
    if model is not None:
        success["content"] = {_JSON: {"model": model}}
    if limited:
        success["headers"] = _RATELIMIT_HEADERS
    documented: dict[int, OpenAPIResponse] = {status: success}
    for error in sorted({401, *errors, *([429] if limited else [])}):
        documented[error] = {"description": _ERRORS[error], "content": {_JSON: {"model": ErrorResponse}}}
    documented[401] = {
        "description": _ERRORS[401],
        "content": {_JSON: {"model": UnauthorizedResponse}},
        "headers": {"WWW-Authenticate": {"description": "Bearer, with the reason", "schema": {"type": "string"}}},
    }
    if limited:
        documented[429]["headers"] = {
            **_RATELIMIT_HEADERS,
            "Retry-After": {"description": "Seconds until the quota's window resets", "schema": {"type": "integer"}},
        }
    return documented


def as_answered(schema: dict[str, Any], open_paths: tuple[str, ...]) -> dict[str, Any]:
    """The generated document as the API really answers: without the 422 Powertools adds to every validated
    route (this API answers 400), without the body it gives a 204 from the route's return type, and with no
    token asked of `open_paths` (Powertools drops `security=[]`)."""
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
            operation.get("responses", {}).get("204", {}).pop("content", None)
            if path in open_paths:
                operation["security"] = []
    return schema


def with_deployment(schema: dict[str, Any], max_upload_bytes: int, preset_names: Sequence[str]) -> dict[str, Any]:
    """The document with what this deployment configures: MaxUploadBytes as the largest `size` (beyond it the
    API answers 413) and its VariantPresets as the presets there are. A request the document allows is served."""
    models = schema.get("components", {}).get("schemas", {})
    for name in _SIZED_MODELS:
        if name in models:
            models[name]["properties"]["size"]["maximum"] = max_upload_bytes
    presets = models.get("VariantsRequestBody", {}).get("properties", {}).get("presets", {})
    for listed in presets.get("anyOf", []):
        if listed.get("type") == "array":
            # An empty list asks for nothing, and is refused: leave `presets` out for all of them.
            listed.update(items={"type": "string", "enum": list(preset_names)}, minItems=1)
    return schema
