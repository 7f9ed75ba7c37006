"""Where a webhook may be sent, and sending it there.

On AWS a target must be a public HTTPS URL: a name that resolves to a private, loopback, link-local or
otherwise non-global address is refused, so that no owner can make the delivery function reach into the
VPC or the instance metadata service (SSRF). The check is made on the addresses the name resolves to at
delivery, and the connection goes to exactly the address that was checked (no second lookup a rebinding
DNS server could answer differently); redirects are not followed. The local runtime allows private
targets, so that tests and developers can receive on loopback.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
# What is read of a receiver's answer: its status is what counts, the rest is for the delivery log.
_MAX_RESPONSE_BYTES = 1024


class TargetRefusedError(Exception):
    """The URL may never receive a webhook here (a permanent failure, not retried)."""


class DeliveryFailedError(Exception):
    """The receiver could not be reached or answered too slowly (retried)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str


def parse_target(url: str, *, allow_private: bool) -> Target:
    """The target of `url`, or TargetRefusedError saying why it cannot be one."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefusedError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TargetRefusedError(f"not a URL: {error}") from None
    schemes = {"https", "http"} if allow_private else {"https"}
    if parts.scheme not in schemes:
        raise TargetRefusedError(f"the URL must be {' or '.join(sorted(schemes))}")
    if not parts.hostname:
        raise TargetRefusedError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefusedError("the URL must not carry credentials")
    if parts.fragment:
        raise TargetRefusedError("the URL must not have a fragment")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = 443 if parts.scheme == "https" else 80
    target = Target(parts.scheme, parts.hostname, port or default_port, path)
    if not allow_private:
        _refuse_literal_private(target.host)
    return target


def _refuse_literal_private(host: str) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: checked when it is resolved, at each delivery
    if not address.is_global:
        raise TargetRefusedError(f"{host} is not a public address")


def resolve(target: Target, *, allow_private: bool) -> str:
    """The address to connect to: the first the name resolves to, once every one of them is allowed."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise DeliveryFailedError(f"cannot resolve {target.host}: {error}") from None
    addresses = [str(info[4][0]) for info in infos]
    if not allow_private:
        for address in addresses:
            # IPv4-mapped IPv6 (::ffff:10.0.0.1) is judged by the IPv4 address it maps.
            parsed = ipaddress.ip_address(address.split("%", 1)[0])
            mapped = parsed.ipv4_mapped if isinstance(parsed, ipaddress.IPv6Address) else None
            if not (mapped or parsed).is_global:
                raise TargetRefusedError(f"{target.host} resolves to {address}, which is not a public address")
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to an address checked beforehand, with the URL's host in the Host header."""

    def __init__(self, target: Target, address: str, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address checked beforehand; the certificate is verified for the URL's host (SNI too)."""

    def __init__(self, target: Target, address: str, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


@dataclass(frozen=True)
class Answer:
    status: int
    body: str


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float, allow_private: bool) -> Answer:
    """POST `body` to `url` once; the receiver's status (redirects are answers, not followed)."""
    target = parse_target(url, allow_private=allow_private)
    address = resolve(target, allow_private=allow_private)
    connection_type = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_type(target, address, timeout)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read(_MAX_RESPONSE_BYTES).decode("utf-8", "replace")
        return Answer(response.status, text)
    except (OSError, http.client.HTTPException) as error:
        raise DeliveryFailedError(f"{type(error).__name__}: {error}") from None
    finally:
        connection.close()
