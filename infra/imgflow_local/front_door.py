"""The local runtime's single AWS endpoint: the emulator's HTTP server, with S3's rules for browsers.

Every request of an SDK is handed to the emulator (moto's WSGI app, in this process) unchanged, except
S3 browser-based uploads (POSTs to a bucket): moto would store them without checking anything, so their
form is read as S3 reads it and its POST policy verified here first, and moto gets only the form S3
would have stored. The emulator is called in-process rather than through an HTTP server of its own: a
second hop cost a millisecond of CPU on each of the ~95 requests an upload makes, on the cores the
functions encode on (the runtime's CPU per 12 MP upload 0.46 -> 0.36 s; README, Measured limits).
A web page may do here only what it may do with S3: upload with a presigned form, download with a
presigned URL, ask a bucket's CORS rules; and every CORS header is S3's, from those rules, never moto's
`*` (which would let any site the developer visits read the local table or the queues).
"""

from __future__ import annotations

import io
import logging
import secrets as token_source
import tempfile
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import IO, TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlsplit

from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import ClientDisconnected
from werkzeug.http import parse_options_header
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.test import EnvironBuilder, run_wsgi_app
from werkzeug.wsgi import get_input_stream

from imgflow_local import s3_cors
from imgflow_local.iam import s3_authorization
from imgflow_local.post_form import UploadFormReader, malformed
from imgflow_local.post_policy import PostPolicyError, VerifiedFields, error_xml, verify_post_fields

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

# S3 takes objects up to 5 GiB by POST; the rest of the body is the form fields around the file.
MAX_UPLOAD_FILE_BYTES = 5 * 1024**3
MAX_UPLOAD_BODY_BYTES = MAX_UPLOAD_FILE_BYTES + 1024**2
# Uploads stay in memory up to this size, then spool to a temporary file.
SPOOL_IN_MEMORY_BYTES = 8 * 1024**2
_CHUNK_BYTES = 64 * 1024
# The Host of the front door's own requests (a bucket's CORS rules): what it signs, and moto reads only
# to route, which the signature's scope does for it.
_OWN_HOST = "127.0.0.1"

# Connection-level headers belong to each hop, not to the message being relayed.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Host goes on as the client sent it: it is signed, and the emulator checks signatures (iam.py). Expect is
# answered by our own server before the body arrives.
_DROPPED_REQUEST_HEADERS = _HOP_BY_HOP | {"expect", "content-length"}
# The serving HTTP server writes its own Server and Date lines.
_DROPPED_RESPONSE_HEADERS = _HOP_BY_HOP | {"server", "date"}
# The headers a WSGI environ holds outside HTTP_*.
_CONTENT_HEADERS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})


def make_front_door(
    emulator: WSGIApplication, secrets: Mapping[str, str], region: str, own_key: str | None = None
) -> WSGIApplication:
    """A WSGI app handing everything to `emulator`, checking S3 POST uploads against `secrets` (read on
    each upload: keys added later count). A verified upload goes on signed by its form's signer, and the
    front door's own requests by `own_key`, so that an emulator enforcing IAM authorizes them as S3 would."""
    return _FrontDoor(emulator, secrets, region, own_key)


def embedded_emulator() -> WSGIApplication:
    """moto's WSGI app, as its server serves it (every service, routed by host and signature)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


class FrontDoorServer:
    """Serves a WSGI app on a background thread (threaded werkzeug server, quiet per request)."""

    def __init__(self, app: WSGIApplication, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the front door is not started")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._server.server_port}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the front door is already started")
        self._server = make_server(
            self._host, self._port, self._app, threaded=True, request_handler=_QuietRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="imgflow-front-door", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None


class _QuietRequestHandler(WSGIRequestHandler):
    # werkzeug logs every request at INFO on its own logger; a local AWS endpoint is too chatty for that.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("%s %s -> %s", self.command, self.path, code)


class _FrontDoor:
    def __init__(self, emulator: WSGIApplication, secrets: Mapping[str, str], region: str, own_key: str | None) -> None:
        self._emulator = emulator
        self._secrets = secrets
        self._region = region
        self._own_key = own_key

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if _from_a_web_page(environ):
            return self._for_a_web_page(environ, start_response)
        if _is_post_object(environ):
            return self._upload(environ, start_response, [])
        return self._relay(environ, start_response, *_request_body(environ))

    def _for_a_web_page(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """What a browser may do here is what it may do with S3 on AWS: upload with a presigned form, download
        with a presigned URL, and ask a bucket's CORS rules first. Nothing else: a page is not an SDK."""
        method = environ["REQUEST_METHOD"]
        origin = environ.get("HTTP_ORIGIN")
        resource = _s3_resource(environ)
        if method == "OPTIONS" and origin and resource and environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD"):
            return self._preflight(environ, start_response, origin, resource)
        if _is_post_object(environ):
            return self._upload(environ, start_response, self._cors_headers(resource, origin, method))
        if method in ("GET", "HEAD") and resource and resource[1] and _is_presigned_s3(environ):
            cors = self._cors_headers(resource, origin, method)
            return self._relay(environ, start_response, *_request_body(environ), cors=cors)
        refused = PostPolicyError(
            "AccessDenied", "Access Denied: a web page may only upload and download through presigned S3 requests"
        )
        return _refusal(refused, start_response, [])

    def _preflight(
        self, environ: WSGIEnvironment, start_response: StartResponse, origin: str, resource: tuple[str, str]
    ) -> Iterable[bytes]:
        bucket, key = resource
        method = environ["HTTP_ACCESS_CONTROL_REQUEST_METHOD"]
        asked = s3_cors.request_header_names(environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS"))
        rules = self._cors_rules(bucket)
        rule = s3_cors.first_match(rules or [], origin, method, asked)
        if rule is None:
            refused = s3_cors.preflight_refused(method, "OBJECT" if key else "BUCKET", cors_enabled=bool(rules))
            return _refusal(refused, start_response, [])
        headers = [("Content-Length", "0"), *s3_cors.preflight_headers(rule, origin, asked)]
        start_response("200 OK", headers)
        return [b""]

    def _cors_headers(self, resource: tuple[str, str] | None, origin: str | None, method: str) -> list[tuple[str, str]]:
        """The CORS headers S3 would add for `origin` (none when no rule of the bucket allows it)."""
        if origin is None or resource is None:
            return []
        rule = s3_cors.first_match(self._cors_rules(resource[0]) or [], origin, method)
        return s3_cors.response_headers(rule, origin) if rule else []

    def _cors_rules(self, bucket: str) -> list[s3_cors.CorsRule] | None:
        """The bucket's CORS rules as the emulator holds them (None: the bucket has no CORS configuration)."""
        path = f"/{quote(bucket)}"
        headers = {"Host": _OWN_HOST}
        if self._own_key is not None:
            credentials = (self._own_key, self._secrets[self._own_key], None)
            url = f"http://{_OWN_HOST}{path}?cors"
            headers |= s3_authorization("GET", url, headers, credentials, self._region)
        environ = EnvironBuilder(path=path, query_string="cors", headers=list(headers.items())).get_environ()
        body, status, _ = run_wsgi_app(self._emulator, environ, buffered=True)
        return s3_cors.parse_rules(b"".join(body)) if status.startswith("200 ") else None

    def _upload(
        self, environ: WSGIEnvironment, start_response: StartResponse, cors: list[tuple[str, str]]
    ) -> Iterable[bytes]:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES) as form:
            try:
                content_type, signer = self._read_upload(environ, form)
            except PostPolicyError as error:
                logger.debug("refused a POST upload: %s", error)
                # The CORS headers too: without them a browser hides S3's reason from the page.
                return _refusal(error, start_response, cors)
            length = form.tell()
            form.seek(0)
            environ = {**environ, "CONTENT_TYPE": content_type}
            # As S3 does, the upload is authorized as whoever signed its form (the api function's role).
            url = f"http://{environ.get('HTTP_HOST', '')}{_target_of(environ)}"
            headers = {"Host": environ.get("HTTP_HOST", ""), "Content-Type": content_type}
            credentials = (signer[0], self._secrets[signer[0]], signer[1])
            signed = s3_authorization("POST", url, headers, credentials, self._region)
            # The emulator reads the whole body before it answers, so the spool can close on the way out.
            return self._relay(environ, start_response, form, length, cors=cors, signed=signed)

    def _read_upload(self, environ: WSGIEnvironment, out: IO[bytes]) -> tuple[str, tuple[str, str | None]]:
        """Read and verify the upload as it streams in, writing the emulator's form to `out`; its Content-Type
        and its signer (access key id, session token)."""
        bucket = _bucket_of(environ)
        if _media_type(environ) != "multipart/form-data":
            raise PostPolicyError(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                details={"Condition": "Bucket POST must be of the enclosure-type multipart/form-data"},
            )
        length = _upload_length(environ)
        now = datetime.now(UTC)

        verified: list[VerifiedFields] = []

        def verify(fields: Mapping[str, str], filename: str | None) -> VerifiedFields:
            verified.append(verify_post_fields(bucket, fields, self._secrets, self._region, now, filename=filename))
            return verified[-1]

        reader = UploadFormReader(_boundary_of(environ), out, verify, MAX_UPLOAD_FILE_BYTES)
        stream = get_input_stream(environ, max_content_length=length)
        try:
            while chunk := stream.read(_CHUNK_BYTES):
                reader.feed(chunk)
            reader.feed(b"")
        except ClientDisconnected as exc:
            raise PostPolicyError(
                "IncompleteBody",
                "You did not provide the number of bytes specified by the Content-Length HTTP header",
            ) from exc
        if not verified:
            raise malformed()
        form = verified[-1].fields
        access_key_id = form["x-amz-credential"].split("/")[0] if "x-amz-credential" in form else form["awsaccesskeyid"]
        return reader.content_type, (access_key_id, form.get("x-amz-security-token"))

    def _relay(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        body: IO[bytes] | bytes | None,
        length: int | None,
        *,
        cors: list[tuple[str, str]] | None = None,
        signed: Mapping[str, str] | None = None,
    ) -> Iterable[bytes]:
        """Hand the request to the emulator (with the `signed` headers, if any); the emulator's own CORS
        headers are replaced by `cors` (S3's, or none)."""
        headers = _forwarded_headers(environ)
        if length is not None:
            headers["Content-Length"] = str(length)
        headers.update(signed or {})
        # The request as the emulator's own server would have made it: the same request line (the raw
        # URI keeps the client's percent-encoding of S3 keys), the headers a hop passes on, the body.
        inner = {key: value for key, value in environ.items() if not _is_header_key(key)}
        inner.update(_environ_headers(headers))
        inner["wsgi.input"] = io.BytesIO(body or b"") if isinstance(body, bytes | None) else body
        inner["wsgi.input_terminated"] = False  # read to its Content-Length (none: no body)
        # werkzeug's own way to call an app and read its answer (write() as well as a body), closing it
        # once the server has sent the body.
        answered, status, answer_headers = run_wsgi_app(self._emulator, inner)
        headers_out = [
            (name, value)
            for name, value in answer_headers.items()
            if name.lower() not in _DROPPED_RESPONSE_HEADERS and not _is_cors_header(name)
        ]
        start_response(status, headers_out + (cors or []))
        return answered


# --- reading the upload -------------------------------------------------------------------------


def _from_a_web_page(environ: WSGIEnvironment) -> bool:
    """Whether a browser sends this for a page: SDKs send neither header; a URL typed in is `none`."""
    return "HTTP_ORIGIN" in environ or environ.get("HTTP_SEC_FETCH_SITE", "none") != "none"


def _s3_resource(environ: WSGIEnvironment) -> tuple[str, str] | None:
    """(bucket, key) of a path-style S3 URL, key "" for the bucket itself; None for the service root."""
    bucket, _, key = environ.get("PATH_INFO", "").lstrip("/").partition("/")
    return (bucket, key) if bucket else None


def _is_presigned_s3(environ: WSGIEnvironment) -> bool:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "X-Amz-Signature" in query:
        scope = query.get("X-Amz-Credential", [""])[0].split("/")
        return len(scope) == 5 and scope[3] == "s3"
    return "Signature" in query and "AWSAccessKeyId" in query


def _is_post_object(environ: WSGIEnvironment) -> bool:
    """A browser upload (S3's POST Object): a POST of a form, or any POST to a bucket without a subresource.

    Media types are case-insensitive, so `Multipart/Form-Data` is a form too; any other POST to a bucket
    is one S3 refuses (PreconditionFailed) rather than one for the emulator to store.
    """
    if environ["REQUEST_METHOD"] != "POST":
        return False
    if _media_type(environ) == "multipart/form-data":
        return True
    path = environ.get("PATH_INFO", "").strip("/")
    return bool(path) and "/" not in path and not environ.get("QUERY_STRING") and "HTTP_AUTHORIZATION" not in environ


def _media_type(environ: WSGIEnvironment) -> str:
    media_type, _ = parse_options_header(environ.get("CONTENT_TYPE", ""))
    return media_type.lower()


def _bucket_of(environ: WSGIEnvironment) -> str:
    # Browser uploads go to the bucket itself (path style): /<bucket> or /<bucket>/.
    bucket = environ.get("PATH_INFO", "").strip("/")
    if not bucket or "/" in bucket:
        raise PostPolicyError(
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            details={"Method": "POST", "ResourceType": "OBJECT" if bucket else "SERVICE"},
        )
    return bucket


def _upload_length(environ: WSGIEnvironment) -> int:
    raw = environ.get("CONTENT_LENGTH", "")
    if not raw.isdigit():
        raise PostPolicyError("MissingContentLength", "You must provide the Content-Length HTTP header.")
    length = int(raw)
    if length > MAX_UPLOAD_BODY_BYTES:
        raise PostPolicyError(
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
            details={"ProposedSize": str(length), "MaxSizeAllowed": str(MAX_UPLOAD_BODY_BYTES)},
        )
    return length


def _boundary_of(environ: WSGIEnvironment) -> bytes:
    _, options = parse_options_header(environ.get("CONTENT_TYPE", ""))
    boundary = options.get("boundary", "")
    if not boundary:
        raise malformed()
    return boundary.encode("latin-1")


def _is_cors_header(name: str) -> bool:
    return name.lower().startswith("access-control-") or name.lower() == "vary"


def _refusal(error: PostPolicyError, start_response: StartResponse, cors: list[tuple[str, str]]) -> list[bytes]:
    request_id = token_source.token_hex(8).upper()
    body = error_xml(error, request_id)
    headers = [
        ("Content-Type", "application/xml"),
        ("Content-Length", str(len(body))),
        ("x-amz-request-id", request_id),
    ]
    start_response(f"{error.status} {_phrase(error.status)}", headers + cors)
    return [body]


# --- relaying -----------------------------------------------------------------------------------


def _request_body(environ: WSGIEnvironment) -> tuple[IO[bytes] | bytes | None, int | None]:
    """The body to forward and its length, streamed when the length is known."""
    raw = environ.get("CONTENT_LENGTH", "")
    if raw.isdigit():
        length = int(raw)
        return (get_input_stream(environ, max_content_length=length) if length else b""), length
    if environ.get("wsgi.input_terminated"):
        # A chunked request: the server has de-chunked it; send it on with a plain length.
        data = get_input_stream(environ).read()
        return data, len(data)
    return None, None


def _forwarded_headers(environ: WSGIEnvironment) -> dict[str, str]:
    headers = EnvironHeaders(environ)
    connection_tokens = {token.strip().lower() for token in headers.get("Connection", "").split(",")}
    return {
        name: value
        for name, value in headers.items()
        if name.lower() not in _DROPPED_REQUEST_HEADERS and name.lower() not in connection_tokens
    }


def _is_header_key(key: str) -> bool:
    return key.startswith("HTTP_") or key in _CONTENT_HEADERS


def _environ_headers(headers: Mapping[str, str]) -> dict[str, str]:
    keys = ((name.upper().replace("-", "_"), value) for name, value in headers.items())
    return {key if key in _CONTENT_HEADERS else f"HTTP_{key}": value for key, value in keys}


def _target_of(environ: WSGIEnvironment) -> str:
    # The raw request line keeps the client's percent-encoding of S3 keys exactly.
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if raw:
        if raw.startswith("/"):
            return str(raw)
        parts = urlsplit(raw)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # WSGI hands the path over as latin-1-decoded bytes.
    path_bytes = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
    path = quote(path_bytes, safe="/!$&'()*+,;=:@~-._")
    query = environ.get("QUERY_STRING", "")
    return path + (f"?{query}" if query else "")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
