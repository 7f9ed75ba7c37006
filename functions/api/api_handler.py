"""api: the HTTP API (API Gateway HTTP API, payload v2) through Powertools' resolver."""

# ruff: noqa: E402  (the imports come after the collector is paused, below)
import gc

# The imports below make some 70,000 objects the collector tracks, all of them living as long as the
# container: a collection while they run only walks what they made (about 13 ms of this function's ~260 ms
# cold import, make bench-cold). Frozen once imported, they are not walked again by later collections. The
# api alone: its cold starts are the ones a client waits for (the others' hide behind a queue).
gc.disable()

import json
import time
from dataclasses import asdict
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext

import webhook_routes
from callers import UnauthorizedError, caller_of
from imgflow.api_models import (
    AddEditRequest,
    BatchUploadRequest,
    BatchUploadResponse,
    EditAccepted,
    EditView,
    ErrorBody,
    ErrorResponse,
    FeedbackRequest,
    Health,
    JobList,
    JobView,
    QueueDepthView,
    QuotaReport,
    QuotaView,
    StatsReport,
    UploadRequest,
    UploadResponse,
)
from imgflow.api_responses import as_answered, responses, with_deployment
from imgflow.errors import (
    EditNotFoundError,
    InvalidWebhookError,
    JobNotFoundError,
    WebhookLimitError,
    WebhookNotFoundError,
)
from imgflow.models import MAX_OWNER_LENGTH, JobStatus
from imgflow.observability import logger, metrics, tracer
from imgflow.quotas import QuotaExceededError, QuotaUse, ratelimit_headers
from imgflow.services import stats_service, uploads_service, webhook_service
from imgflow.settings import get_settings
from imgflow.uploads import (
    MAX_WAIT_SECONDS,
    Caller,
    ChainTooLongError,
    EmptyUploadError,
    ForbiddenError,
    InvalidUploadRequestError,
    JobNotEditableError,
    UploadTooLargeError,
    iso,
)

gc.enable()
gc.freeze()

# Our bodies nest five deep (edits, an edit, its operations, one operation); far deeper is an attack on the parser.
_MAX_BODY_DEPTH = 32


def _invalid_body(message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body",), "msg": message, "type": "json_invalid"}])


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise ValueError(f"the key {key!r} is given twice")
        value[key] = item
    return value


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def _json_int(digits: str) -> int:
    try:
        return int(digits)
    except ValueError:  # Python converts at most 4300 digits
        raise ValueError(f"a number of {len(digits)} digits is too long") from None


def _nested_deeper_than(value: Any, depth: int) -> bool:
    level = [value]
    for _ in range(depth):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item if isinstance(item, list) else ())
        ]
    return bool(level)


def _json_body(text: str) -> Any:
    """The request body as strict JSON: Python's parser takes NaN, keeps the last of a key given twice and
    raises RecursionError on deep nesting, where a client must get a 400 in our shape."""
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_not_json, parse_int=_json_int)
    except RecursionError:
        raise _invalid_body(f"nested more than {_MAX_BODY_DEPTH} deep") from None
    except json.JSONDecodeError as error:
        raise _invalid_body(f"not JSON: {error.msg} (line {error.lineno}, column {error.colno})") from error
    except ValueError as error:  # from the hooks above
        raise _invalid_body(str(error)) from error
    if _nested_deeper_than(value, _MAX_BODY_DEPTH):
        raise _invalid_body(f"nested more than {_MAX_BODY_DEPTH} deep")
    return value


app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=_json_body)
app.include_router(webhook_routes.router)


def _caller() -> Caller:
    return caller_of(app.current_event)


def _owner() -> str:
    return _caller().owner


def _limited(status: int, body: Any, uses: list[QuotaUse]) -> Response[Any]:
    """A response of a route that charges quotas, with the RateLimit fields of what it charged."""
    headers = ratelimit_headers(uses, int(time.time()))
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


def _status_url(job_id: str) -> str:
    event = app.current_event
    scheme = event.headers.get("x-forwarded-proto", "https")
    return f"{scheme}://{event.request_context.domain_name}/jobs/{job_id}"


def _error(status: int, code: str, message: str) -> Response[str]:
    body = ErrorResponse(error=ErrorBody(code=code, message=message))
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body.model_dump_json())


def _notify(owner: str, uploads: list[UploadResponse], url: str | None) -> None:
    """Deliver each new job's events to `url` too, for as long as the job is kept."""
    if url:
        until = int(time.time()) + get_settings().job_retention_days * 86400
        webhook_service().watch_jobs(owner, [upload.job_id for upload in uploads], url, until)


@app.post(
    "/uploads",
    responses=responses(201, "The job and its presigned POST", UploadResponse, 400, 403, 413, limited=True),
)
@tracer.capture_method
def create_upload(request: Annotated[UploadRequest, Body()]) -> Response[UploadResponse]:
    service, caller = uploads_service(), _caller()
    service.check_upload(request)
    if request.notify_url:
        webhook_service().check_target(request.notify_url, "notify_url")
    uses = service.charge_uploads(caller, [request])
    response = service.create_upload(request, caller.owner, _status_url)
    _notify(caller.owner, [response], request.notify_url)
    logger.append_keys(job_id=response.job_id)
    logger.info("upload created", extra={"upload_filename": request.filename, "size": request.size})
    metrics.add_metric(name="UploadsCreated", unit="Count", value=1)
    return _limited(201, response, uses)


@app.post(
    "/uploads/batch",
    responses=responses(201, "One job and form per file", BatchUploadResponse, 400, 403, 413, limited=True),
)
@tracer.capture_method
def create_uploads(request: Annotated[BatchUploadRequest, Body()]) -> Response[BatchUploadResponse]:
    # Every file is checked before any job is made, so a refused batch leaves nothing behind.
    service, caller = uploads_service(), _caller()
    requests = request.per_file()
    for one in requests:
        service.check_upload(one)
    if request.notify_url:
        webhook_service().check_target(request.notify_url, "notify_url")
    uses = service.charge_uploads(caller, requests)
    body = BatchUploadResponse(uploads=[service.create_upload(one, caller.owner, _status_url) for one in requests])
    _notify(caller.owner, body.uploads, request.notify_url)
    logger.info("batch of uploads created", extra={"job_ids": [u.job_id for u in body.uploads]})
    metrics.add_metric(name="UploadsCreated", unit="Count", value=len(body.uploads))
    return _limited(201, body, uses)


@app.get("/jobs/<job_id>", responses=responses(200, "The job view", JobView, 400, 404))
@tracer.capture_method
def get_job(
    job_id: str,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 0,
    since: Annotated[int | None, Query(ge=0)] = None,
) -> JobView:
    logger.append_keys(job_id=job_id)
    service = uploads_service()
    owner = _owner()
    job = service.wait_for_job(job_id, owner, wait, since) if wait else service.get_job(job_id, owner)
    return service.view(job)


@app.get("/jobs", responses=responses(200, "A page of the caller's jobs, newest first", JobList, 400))
@tracer.capture_method
def list_jobs(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    status: Annotated[JobStatus | None, Query()] = None,
) -> JobList:
    service = uploads_service()
    jobs, next_cursor = service.list_jobs(_owner(), limit, cursor, status)
    return JobList(jobs=[service.view(job) for job in jobs], next_cursor=next_cursor)


@app.delete("/jobs/<job_id>", responses=responses(204, "Deleted, with every object of the job", None, 404))
@tracer.capture_method
def delete_job(job_id: str) -> Response[str]:
    logger.append_keys(job_id=job_id)
    uploads_service().delete_job(job_id, _owner())
    logger.info("job deleted")
    metrics.add_metric(name="JobsDeleted", unit="Count", value=1)
    return Response(status_code=204, body="")


@app.get("/quota", responses=responses(200, "The caller's quotas and their use", QuotaReport))
@tracer.capture_method
def get_quota() -> QuotaReport:
    owner = _owner()
    uses = uploads_service().quota_usage(owner)
    return QuotaReport(
        owner=owner,
        quotas=[
            QuotaView(
                name=use.quota.name,
                limit=use.quota.limit,
                used=use.used,
                remaining=use.remaining,
                window_seconds=use.quota.window,
                per_owner=use.quota.per_owner,
                resets_at=iso(use.resets_at),
            )
            for use in uses
        ],
    )


@app.post(
    "/jobs/<job_id>/edits",
    responses=responses(202, "The edit is queued", EditAccepted, 400, 403, 404, 409, limited=True),
)
@tracer.capture_method
def add_edit(job_id: str, request: Annotated[AddEditRequest, Body()]) -> Response[EditAccepted]:
    logger.append_keys(job_id=job_id)
    edit_id, status_url, uses = uploads_service().add_edit(job_id, _caller(), request, _status_url)
    logger.info("edit added", extra={"edit_id": edit_id, "parent_edit_id": request.parent_edit_id})
    metrics.add_metric(name="EditsAdded", unit="Count", value=1)
    return _limited(202, EditAccepted(edit_id=edit_id, status_url=status_url), uses)


@app.post(
    "/jobs/<job_id>/edits/<edit_id>/feedback",
    responses=responses(200, "The edit, with the feedback recorded", EditView, 400, 404, 409),
)
@tracer.capture_method
def give_feedback(job_id: str, edit_id: str, request: Annotated[FeedbackRequest, Body()]) -> EditView:
    logger.append_keys(job_id=job_id, edit_id=edit_id)
    service = uploads_service()
    job = service.give_feedback(job_id, _owner(), edit_id, request.rating, request.text)
    logger.info("edit feedback", extra={"rating": request.rating})
    metrics.add_metric(name=f"EditFeedback_{request.rating}", unit="Count", value=1)
    return service.edit_view(job, edit_id)


@app.get(
    "/stats", responses=responses(200, "The figures of the dashboard, for the caller or everyone", StatsReport, 400)
)
@tracer.capture_method
def get_stats(hours: Annotated[int, Query(ge=1, le=24 * 14)] = 24) -> StatsReport:
    caller = _caller()
    everyone = get_settings().admin_scope in caller.scopes
    stats = stats_service().report(caller.owner, everyone, int(time.time()) - hours * 3600)
    return StatsReport(
        scope="everyone" if everyone else "owner",
        owner=stats.owner,
        since=iso(stats.since),
        truncated=stats.truncated,
        **asdict(stats.jobs),
        webhook_deliveries_by_status=stats.deliveries_by_status,
        queues=[QueueDepthView(**vars(depth)) for depth in stats.queues] if stats.queues is not None else None,
    )


@app.get("/health")
def health() -> Health:
    return Health()


def api_document() -> dict[str, Any]:
    """The document the routes and models make, the same for every deployment (clients' types come from it)."""
    # Powertools' OpenAPI models cost ~140 ms of CPU to build: a cold start pays them only for this route.
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    schema: dict[str, Any] = app.get_openapi_schema(
        title="imgflow",
        version="0.1.0",
        security_schemes={"bearer": HTTPBearer(bearerFormat="JWT")},
        security=[{"bearer": []}],
    ).model_dump(mode="json", by_alias=True, exclude_none=True)
    return as_answered(schema, open_paths=("/health",))


@app.get("/openapi.json", include_in_schema=False)
def openapi() -> dict[str, Any]:
    settings = get_settings()
    presets = [preset.name for preset in settings.variant_presets]
    return with_deployment(api_document(), settings.max_upload_bytes, presets)


@app.exception_handler(UnauthorizedError)
def unauthorized(error: UnauthorizedError) -> Response[str]:
    response = _error(401, "unauthorized", str(error))
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


@app.exception_handler(ForbiddenError)
def forbidden(error: ForbiddenError) -> Response[str]:
    return _error(403, "forbidden", error.message)


@app.exception_handler(QuotaExceededError)
def quota_exceeded(error: QuotaExceededError) -> Response[str]:
    response = _error(429, "quota_exceeded", error.message)
    response.headers.update(ratelimit_headers(error.uses, int(time.time())))
    response.headers["Retry-After"] = str(error.retry_after)
    return response


@app.exception_handler(JobNotFoundError)
def job_not_found(error: JobNotFoundError) -> Response[str]:
    return _error(404, "not_found", error.message)


@app.exception_handler(EditNotFoundError)
def edit_not_found(error: EditNotFoundError) -> Response[str]:
    return _error(404, "not_found", error.message)


@app.exception_handler(WebhookNotFoundError)
def webhook_not_found(error: WebhookNotFoundError) -> Response[str]:
    return _error(404, "not_found", error.message)


@app.exception_handler(InvalidWebhookError)
def invalid_webhook(error: InvalidWebhookError) -> Response[str]:
    return _error(400, "invalid_request", error.message)


@app.exception_handler(WebhookLimitError)
def too_many_webhooks(error: WebhookLimitError) -> Response[str]:
    return _error(409, "conflict", error.message)


@app.exception_handler(UploadTooLargeError)
def upload_too_large(error: UploadTooLargeError) -> Response[str]:
    return _error(413, "too_large_bytes", error.message)


@app.exception_handler(InvalidUploadRequestError)
def invalid_upload(error: InvalidUploadRequestError) -> Response[str]:
    return _error(400, "invalid_request", error.message)


@app.exception_handler(EmptyUploadError)
def empty_upload(error: EmptyUploadError) -> Response[str]:
    return _error(400, "empty_file", error.message)


@app.exception_handler(ChainTooLongError)
def chain_too_long(error: ChainTooLongError) -> Response[str]:
    return _error(400, "chain_too_long", error.message)


@app.exception_handler(JobNotEditableError)
def job_not_editable(error: JobNotEditableError) -> Response[str]:
    return _error(409, "conflict", error.message)


@app.exception_handler(RequestValidationError)
def invalid_request(error: RequestValidationError) -> Response[str]:
    details = "; ".join(
        f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item.get('msg', '')}" for item in error.errors()
    )
    return _error(400, "invalid_request", details or "the request is not valid")


@app.exception_handler(RequestUnsupportedContentType)
def unsupported_content_type(_: RequestUnsupportedContentType) -> Response[str]:
    # The body is read as JSON when it says so (or says nothing); any other type is refused, not guessed at.
    given = app.current_event.headers.get("content-type", "")
    return _error(400, "invalid_request", f"body: send JSON as {content_types.APPLICATION_JSON} (not {given})")


@app.exception_handler(ValueError)
def unparsable_form(error: ValueError) -> Response[str]:
    # Powertools parses form and multipart bodies itself and fails with a bare ValueError on a malformed one
    # (a multipart type without its boundary was a 500, found by the contract fuzzer): the body's fault.
    given = app.current_event.headers.get("content-type", "")
    if not given.lower().startswith(("multipart/", "application/x-www-form-urlencoded")):
        raise error
    return _error(400, "invalid_request", f"body: send JSON as {content_types.APPLICATION_JSON} (not {given})")


@app.exception_handler(UnicodeDecodeError)
def undecodable_body(error: UnicodeDecodeError) -> Response[str]:
    try:
        _ = app.current_event.decoded_body  # base64 and UTF-8, decoded by Powertools before any route runs
    except UnicodeDecodeError:
        return _error(400, "invalid_request", "body: not UTF-8 text")
    raise error  # not the body's fault: a 500, as without this handler


@app.not_found
def route_not_found(_: Exception) -> Response[str]:
    return _error(404, "not_found", f"no route for {app.current_event.http_method} {app.current_event.path}")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _with_ratelimit_fields(event, app.resolve(event, context))


# Routes that charge quotas: every answer of theirs says where the caller stands.
_LIMITED_ROUTES = frozenset({"POST /uploads", "POST /uploads/batch", "POST /jobs/{job_id}/edits"})


def _with_ratelimit_fields(event: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """A limited route's answer that charged nothing (a refused request) still carries the RateLimit
    fields, read from the caller's counters; answers that charged carry them already."""
    headers = response.setdefault("headers", {})
    if event.get("routeKey") not in _LIMITED_ROUTES or any(name.lower() == "ratelimit" for name in headers):
        return response
    owner = APIGatewayProxyEventV2(event).request_context.authorizer.jwt_claim.get("sub")
    if owner and len(owner) <= MAX_OWNER_LENGTH:
        headers.update(ratelimit_headers(uploads_service().quota_usage(owner), int(time.time())))
    return response
