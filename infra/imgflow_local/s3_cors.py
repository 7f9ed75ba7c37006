"""A bucket's CORS rules as S3 applies them: which origin may send which request, and the headers it gets.

The front door answers every CORS question of the emulator's endpoint itself from these rules, because
the emulator answers `Access-Control-Allow-Origin: *` to anything (any page the developer visits could
then read the local table or list the queues). Pure: the rules come in as the GetBucketCors XML.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from xml.etree import ElementTree

from imgflow_local.post_policy import PostPolicyError


@dataclass(frozen=True)
class CorsRule:
    origins: tuple[str, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    expose: tuple[str, ...]
    max_age: int | None

    def allows(self, origin: str, method: str, request_headers: Sequence[str] = ()) -> bool:
        # S3's wildcards: one `*` in an origin or header name matches anything; header names ignore case.
        return (
            method in self.methods
            and any(fnmatchcase(origin, allowed) for allowed in self.origins)
            and all(any(fnmatchcase(h.lower(), a.lower()) for a in self.headers) for h in request_headers)
        )


def parse_rules(document: bytes) -> list[CorsRule]:
    """The rules of a GetBucketCors answer (an empty list for a malformed one)."""
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError:
        return []
    rules = []
    for rule in root.iter():
        if _local_name(rule.tag) != "CORSRule":
            continue
        values: dict[str, list[str]] = {}
        for child in rule:
            values.setdefault(_local_name(child.tag), []).append((child.text or "").strip())
        max_age = values.get("MaxAgeSeconds", [""])[0]
        rules.append(
            CorsRule(
                tuple(values.get("AllowedOrigin", [])),
                tuple(values.get("AllowedMethod", [])),
                tuple(values.get("AllowedHeader", [])),
                tuple(values.get("ExposeHeader", [])),
                int(max_age) if max_age.isdigit() else None,
            )
        )
    return rules


def first_match(
    rules: Sequence[CorsRule], origin: str, method: str, request_headers: Sequence[str] = ()
) -> CorsRule | None:
    """The rule S3 applies: the first that allows the request."""
    return next((rule for rule in rules if rule.allows(origin, method, request_headers)), None)


def response_headers(rule: CorsRule, origin: str) -> list[tuple[str, str]]:
    """The CORS headers S3 adds to an answer the rule allows."""
    headers = [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Methods", ", ".join(rule.methods)),
        ("Vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"),
    ]
    if rule.expose:
        headers.append(("Access-Control-Expose-Headers", ", ".join(rule.expose)))
    return headers


def preflight_headers(rule: CorsRule, origin: str, request_headers: Sequence[str]) -> list[tuple[str, str]]:
    """The answer to a preflight the rule allows."""
    headers = response_headers(rule, origin)
    if request_headers:
        headers.append(("Access-Control-Allow-Headers", ", ".join(request_headers)))
    if rule.max_age is not None:
        headers.append(("Access-Control-Max-Age", str(rule.max_age)))
    return headers


def preflight_refused(method: str, resource_type: str, *, cors_enabled: bool) -> PostPolicyError:
    """S3's 403 to a preflight no rule allows."""
    message = (
        "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, "
        "request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted "
        "by the resource's CORS spec."
        if cors_enabled
        else "CORSResponse: CORS is not enabled for this bucket."
    )
    return PostPolicyError(
        "AccessForbidden", message, status=403, details={"Method": method, "ResourceType": resource_type}
    )


def request_header_names(value: str | None) -> list[str]:
    """The names in an Access-Control-Request-Headers header."""
    return [name.strip() for name in (value or "").split(",") if name.strip()]


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
