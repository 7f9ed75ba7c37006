"""The local runtime's single AWS endpoint: a reverse proxy in front of the emulator.

Every request is relayed to the upstream (moto's server) unchanged, except S3 browser-based uploads
(multipart/form-data POSTs to a bucket): moto would store them without checking anything, so their
POST policy is verified here first, as S3 does, and only an accepted upload reaches moto, byte for byte.
"""

from __future__ import annotations

import logging
import secrets as token_source
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from http import HTTPStatus
from typing import IO, TYPE_CHECKING
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

import urllib3
from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import ClientDisconnected
from werkzeug.http import parse_options_header
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wsgi import get_input_stream

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
# Host is the upstream's; Expect is answered by our own server before the body arrives.
_DROPPED_REQUEST_HEADERS = _HOP_BY_HOP | {"host", "expect", "content-length"}
# The serving HTTP server writes its own Server and Date lines; relaying moto's would duplicate them.
_DROPPED_RESPONSE_HEADERS = _HOP_BY_HOP | {"server", "date"}


def make_front_door(upstream: str, secrets: Mapping[str, str], region: str) -> WSGIApplication:
    """A WSGI app relaying everything to `upstream`, checking S3 POST uploads against `secrets`."""
    return _FrontDoor(upstream, secrets, region)


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
    def __init__(self, upstream: str, secrets: Mapping[str, str], region: str) -> None:
        self._secrets = dict(secrets)
        self._region = region
        # urllib3's pool is thread-safe; block=False opens extra connections under bursts
        # rather than queueing requests behind a slow one (SQS long polls).
        self._pool = urllib3.connection_from_url(
            upstream, maxsize=16, block=False, timeout=urllib3.Timeout(connect=5.0, read=600.0)
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if _is_post_object(environ):
            return self._upload(environ, start_response)
        return self._relay(environ, start_response, *_request_body(environ))

    def _upload(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # S3 answers CORS headers only to an origin one of the bucket's CORS rules allows; the emulator
        # echoes any origin, which would let a page work locally that fails on AWS.
        origin = environ.get("HTTP_ORIGIN")
        cors_allowed = origin is None or self._cors_allows(environ, origin)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES) as form:
            try:
                content_type = self._read_upload(environ, form)
            except PostPolicyError as error:
                logger.debug("refused a POST upload: %s", error)
                return _refusal(error, environ, start_response, cors_allowed)
            length = form.tell()
            form.seek(0)
            environ = {**environ, "CONTENT_TYPE": content_type}
            # The whole body is sent before urlopen returns, so the spool can close on the way out.
            return self._relay(environ, start_response, form, length, strip_cors=not cors_allowed)

    def _cors_allows(self, environ: WSGIEnvironment, origin: str) -> bool:
        """Whether a CORS rule of the upload's bucket allows a POST from `origin` (read from the emulator)."""
        try:
            bucket = _bucket_of(environ)
            response = self._pool.request("GET", f"/{quote(bucket)}?cors", retries=False)
        except (PostPolicyError, urllib3.exceptions.HTTPError):
            return False
        if response.status != 200:
            return False
        return any(
            "POST" in methods and any(fnmatchcase(origin, allowed) for allowed in origins)
            for origins, methods in _cors_rules(response.data)
        )

    def _read_upload(self, environ: WSGIEnvironment, out: IO[bytes]) -> str:
        """Read and verify the upload as it streams in, writing the emulator's form to `out`; its Content-Type."""
        bucket = _bucket_of(environ)
        if _media_type(environ) != "multipart/form-data":
            raise PostPolicyError(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                details={"Condition": "Bucket POST must be of the enclosure-type multipart/form-data"},
            )
        length = _upload_length(environ)
        now = datetime.now(UTC)

        def verify(fields: Mapping[str, str], filename: str | None) -> VerifiedFields:
            return verify_post_fields(bucket, fields, self._secrets, self._region, now, filename=filename)

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
        return reader.content_type

    def _relay(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        body: IO[bytes] | bytes | None,
        length: int | None,
        *,
        strip_cors: bool = False,
    ) -> Iterable[bytes]:
        headers = _forwarded_headers(environ)
        if length is not None:
            headers["Content-Length"] = str(length)
        try:
            response = self._pool.urlopen(
                environ["REQUEST_METHOD"],
                _target_of(environ),
                body=body,
                headers=headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            logger.debug("upstream unreachable: %s", exc)
            message = b"the AWS emulator behind the front door did not answer\n"
            start_response("502 Bad Gateway", [("Content-Type", "text/plain"), ("Content-Length", str(len(message)))])
            return [message]
        reason = response.reason or _phrase(response.status)
        headers_out = _relayed_headers(response)
        if strip_cors:
            headers_out = [
                (n, v) for n, v in headers_out if not n.lower().startswith("access-control-") and n.lower() != "vary"
            ]
        start_response(f"{response.status} {reason}", headers_out)
        return _RelayedBody(response)


class _RelayedBody:
    """The upstream body as the WSGI iterable; `close` gives the connection back (or drops it if unread)."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response
        self._finished = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.stream(_CHUNK_BYTES, decode_content=False)
        self._finished = True

    def close(self) -> None:
        if not self._finished:
            # Unread bytes would corrupt the next exchange on a reused connection.
            self._response.close()
        self._response.release_conn()


# --- reading the upload -------------------------------------------------------------------------


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


def _cors_rules(document: bytes) -> list[tuple[list[str], list[str]]]:
    """(allowed origins, allowed methods) of each rule of a GetBucketCors answer."""
    root = ElementTree.fromstring(document)
    rules = []
    for rule in root.iter():
        if rule.tag.rsplit("}", 1)[-1] != "CORSRule":
            continue
        values: dict[str, list[str]] = {"AllowedOrigin": [], "AllowedMethod": []}
        for child in rule:
            name = child.tag.rsplit("}", 1)[-1]
            if name in values and child.text:
                values[name].append(child.text.strip())
        rules.append((values["AllowedOrigin"], values["AllowedMethod"]))
    return rules


def _refusal(
    error: PostPolicyError, environ: WSGIEnvironment, start_response: StartResponse, cors_allowed: bool
) -> list[bytes]:
    request_id = token_source.token_hex(8).upper()
    body = error_xml(error, request_id)
    headers = [
        ("Content-Type", "application/xml"),
        ("Content-Length", str(len(body))),
        ("x-amz-request-id", request_id),
    ]
    origin = environ.get("HTTP_ORIGIN")
    if origin and cors_allowed:
        # Without it a browser hides S3's reason from the page that tried the upload.
        headers += [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
    start_response(f"{error.status} {_phrase(error.status)}", headers)
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


def _relayed_headers(response: urllib3.BaseHTTPResponse) -> list[tuple[str, str]]:
    headers = response.headers
    connection_tokens = {token.strip().lower() for token in headers.get("Connection", "").split(",")}
    return [
        (name, value)
        for name, value in headers.iteritems()
        if name.lower() not in _DROPPED_RESPONSE_HEADERS and name.lower() not in connection_tokens
    ]


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
