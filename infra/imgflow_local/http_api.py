"""The HTTP API on localhost, as API Gateway's HTTP API serves it: each request becomes a payload v2
event for the function whose route matches, CORS preflights are answered from the template's
CorsConfiguration, and the function's response becomes the HTTP response."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from imgflow_local.auth import JwtAuthorizer, UnauthorizedError, gateway_claims, token_scopes
from imgflow_local.functions import LocalFunction
from imgflow_local.stack import HttpApiSpec, HttpRoute
from imgflow_local.throttle import TokenBucket

_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-www-form-urlencoded")
# The runtime's own pages for tests and debugging (every job's events): for this origin's pages and tools
# only, never for another site the developer happens to have open.
SAME_ORIGIN_ONLY_PREFIX = "/_local/"


@dataclass(frozen=True)
class BoundRoute:
    route: HttpRoute
    pattern: re.Pattern[str]
    function: LocalFunction

    @property
    def route_key(self) -> str:
        return f"{self.route.method} {self.route.path}"


def bind(route: HttpRoute, function: LocalFunction) -> BoundRoute:
    parts = []
    for segment in route.path.strip("/").split("/"):
        parameter = re.fullmatch(r"\{([A-Za-z0-9_]+)(\+?)\}", segment)
        if parameter is None:
            parts.append(re.escape(segment))
        else:
            # {name+} is a greedy path variable in API Gateway: it may span several segments.
            parts.append(f"(?P<{parameter[1]}>{'.+' if parameter[2] else '[^/]+'})")
    return BoundRoute(route, re.compile("^/" + "/".join(parts) + "$"), function)


class HttpApiApp:
    def __init__(
        self,
        routes: Iterable[BoundRoute],
        cors: HttpApiSpec,
        authorizers: Mapping[str, JwtAuthorizer],
        extra: dict[str, Callable[[Request], Response]] | None = None,
        open_claims: Mapping[str, Any] | None = None,
        *,
        account_id: str,
    ) -> None:
        self._routes = list(routes)
        # Route throttling as the stage's DefaultRouteSettings set it: a bucket per route, as on AWS.
        throttle = cors.throttle
        self._buckets = {
            bound.route_key: TokenBucket(throttle.rate, throttle.burst) for bound in self._routes if throttle
        }
        self._account_id = account_id
        self._cors = cors
        self._authorizers = authorizers
        # `imgflow serve --open`: a request without a token is served with these claims instead of a 401.
        self._open_claims = open_claims
        # Local-only pages (the demo page, the step log) answer before the API's routes.
        self._extra = extra or {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        response = self._respond(request)
        self._add_cors(request, response)
        return response(environ, start_response)

    def _respond(self, request: Request) -> Response:
        if request.path.startswith(SAME_ORIGIN_ONLY_PREFIX) and not _same_origin(request):
            message = f"{SAME_ORIGIN_ONLY_PREFIX}* answers this origin's own pages only"
            return _json_response(403, {"error": {"code": "forbidden", "message": message}})
        if request.path in self._extra:
            return self._extra[request.path](request)
        if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
            return Response(status=204)
        for bound in self._routes:
            match = bound.pattern.match(request.path)
            if match and bound.route.method in {request.method, "ANY"}:
                bucket = self._buckets.get(bound.route_key)
                if bucket is not None and not bucket.take():
                    # API Gateway's own answer, before the authorizer or the function.
                    return _json_response(429, {"message": "Too Many Requests"})
                return self._invoke(bound, match.groupdict(), request)
        return Response(json.dumps({"message": "Not Found"}), status=404, content_type="application/json")

    def _authorize(self, bound: BoundRoute, request: Request) -> dict[str, Any] | Response | None:
        """The authorizer's part of the event, or the 401/403 API Gateway answers instead of the function."""
        if bound.route.authorizer is None:
            return None
        header = request.headers.get("Authorization")
        if header is None and self._open_claims is not None:
            claims = dict(self._open_claims)
        else:
            try:
                claims = self._authorizers[bound.route.authorizer].authorize(header)
            except UnauthorizedError as refused:
                return _unauthorized(str(refused), has_token=bool(header))
        scopes = token_scopes(claims)
        if bound.route.scopes and not set(bound.route.scopes) & set(scopes):
            return _json_response(403, {"message": "Forbidden"})
        return {"jwt": {"claims": gateway_claims(claims), "scopes": scopes or None}}

    def _invoke(self, bound: BoundRoute, path_parameters: dict[str, str], request: Request) -> Response:
        authorizer = self._authorize(bound, request)
        if isinstance(authorizer, Response):
            return authorizer
        event = self._event(bound, path_parameters, request)
        if authorizer is not None:
            event["requestContext"]["authorizer"] = authorizer
        try:
            result = bound.function.invoke(event)
        except Exception:
            # What API Gateway answers when the integration fails or times out.
            return Response(
                json.dumps({"message": "Internal Server Error"}), status=500, content_type="application/json"
            )
        return _to_response(result)

    def _event(self, bound: BoundRoute, path_parameters: dict[str, str], request: Request) -> dict[str, Any]:
        body = request.get_data()
        content_type = request.headers.get("Content-Type", "")
        is_text = not body or content_type.startswith(_TEXT_TYPES)
        headers = {name.lower(): value for name, value in request.headers.items()}
        headers.setdefault("x-forwarded-proto", request.scheme)
        query: dict[str, str] = {key: ",".join(request.args.getlist(key)) for key in request.args}
        now = time.time()
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": bound.route_key,
            "rawPath": request.path,
            "rawQueryString": request.query_string.decode(),
            "headers": headers,
            "requestContext": {
                "accountId": self._account_id,
                "apiId": "local",
                "domainName": request.host,
                "domainPrefix": request.host.split(".")[0],
                "http": {
                    "method": request.method,
                    "path": request.path,
                    "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                    "sourceIp": request.remote_addr or "127.0.0.1",
                    "userAgent": request.headers.get("User-Agent", ""),
                },
                "requestId": str(uuid.uuid4()),
                "routeKey": bound.route_key,
                "stage": "$default",
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "timeEpoch": int(now * 1000),
            },
            "isBase64Encoded": not is_text,
        }
        if request.cookies:
            event["cookies"] = [f"{k}={v}" for k, v in request.cookies.items()]
        if query:
            event["queryStringParameters"] = query
        if path_parameters:
            event["pathParameters"] = path_parameters
        if body:
            text = _as_text(body) if is_text else None
            event["body"] = base64.b64encode(body).decode() if text is None else text
            event["isBase64Encoded"] = text is None
        return event

    def _add_cors(self, request: Request, response: Response) -> None:
        origin = request.headers.get("Origin")
        if not origin or not self._cors.cors_origins or request.path.startswith(SAME_ORIGIN_ONLY_PREFIX):
            return
        if "*" not in self._cors.cors_origins and origin not in self._cors.cors_origins:
            return
        response.headers["Access-Control-Allow-Origin"] = "*" if "*" in self._cors.cors_origins else origin
        if self._cors.cors_expose_headers:
            response.headers["Access-Control-Expose-Headers"] = ",".join(self._cors.cors_expose_headers)
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = ",".join(self._cors.cors_methods)
            response.headers["Access-Control-Allow-Headers"] = ",".join(self._cors.cors_headers)
            response.headers["Access-Control-Max-Age"] = str(self._cors.cors_max_age)


def _same_origin(request: Request) -> bool:
    """Not sent by another site's page: by its Origin, or by Sec-Fetch-Site where a browser sends no Origin."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != request.host_url.rstrip("/"):
        return False
    return request.headers.get("Sec-Fetch-Site", "none") in {"same-origin", "none"}


def _as_text(body: bytes) -> str | None:
    """The body as text, or None when its bytes are not UTF-8 (they travel base64-encoded, whatever type
    they claim)."""
    try:
        return body.decode()
    except UnicodeDecodeError:
        return None


def _json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json", headers=dict(headers or {}))


def _unauthorized(reason: str, has_token: bool) -> Response:
    """API Gateway's 401 (`message`, `WWW-Authenticate` as RFC 6750 puts it), with our error shape beside it."""
    description = reason.replace('"', "'")
    challenge = f'Bearer error="invalid_token", error_description="{description}"' if has_token else "Bearer"
    body = {"message": "Unauthorized", "error": {"code": "unauthorized", "message": reason}}
    return _json_response(401, body, {"WWW-Authenticate": challenge})


def _to_response(result: Any) -> Response:
    """Payload v2's response rules: a dict with statusCode is a full response; anything else is JSON."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return Response(json.dumps(result), status=200, content_type="application/json")
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    response = Response(data, status=int(result["statusCode"]))
    if response.status_code in {204, 304}:
        # No content, so no Content-Type (werkzeug would add its text/plain default).
        del response.headers["Content-Type"]
    for name, value in (result.get("headers") or {}).items():
        response.headers[name] = str(value)
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values:
            response.headers.add(name, str(value))
    for cookie in result.get("cookies") or []:
        response.headers.add("Set-Cookie", cookie)
    return response
