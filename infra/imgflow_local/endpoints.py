"""Where the local runtime finds each AWS service: on its embedded emulator, on an emulator that is
already running (LocalStack) for every service, or per service, e.g. `--aws-endpoint URL --aws-endpoint
dynamodb=embedded` keeps DynamoDB on the embedded emulator while S3, SQS and EventBridge go to LocalStack.

The runtime and every function find the endpoints the same way, through boto3's own `AWS_ENDPOINT_URL`
and `AWS_ENDPOINT_URL_<SERVICE>` variables: the runtime sets them in its environment, which each function's
container inherits. Those variables in the shell that starts the runtime are replaced, never merged: a
stray one would send a function's calls where the runtime created no resources.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from urllib.parse import urlsplit

import boto3
from botocore.utils import CLIENT_NAME_TO_HYPHENIZED_SERVICE_ID_OVERRIDES, SERVICE_NAME_ALIASES
from pydantic import BaseModel, ConfigDict

# What `--aws-endpoint SERVICE=embedded` says: that service stays on the embedded emulator.
EMBEDDED = "embedded"
GLOBAL_VARIABLE = "AWS_ENDPOINT_URL"
_SERVICE_SPEC = re.compile(r"(?P<service>[a-z0-9-]+)=(?P<target>.+)")


class EndpointError(ValueError):
    """An `--aws-endpoint` value that names no service boto3 knows, or no http(s) URL."""


class AwsEndpoints(BaseModel):
    """`None` is the embedded emulator, a URL an emulator already running."""

    model_config = ConfigDict(frozen=True)

    default: str | None = None
    # boto3 client names (`s3`, `sqs`, `events`, `dynamodb`, `sts`) whose endpoint differs from `default`.
    services: Mapping[str, str | None] = {}

    @classmethod
    def parse(cls, values: Iterable[str]) -> AwsEndpoints:
        """From `--aws-endpoint` values: `URL` for every service, `SERVICE=URL` or `SERVICE=embedded` for one."""
        default: str | None = None
        services: dict[str, str | None] = {}
        known = set(boto3.session.Session().get_available_services())
        for value in values:
            match = _SERVICE_SPEC.fullmatch(value)
            if match is None:
                default = _url(value)
                continue
            service, target = match["service"], match["target"]
            if service not in known:
                raise EndpointError(f"--aws-endpoint {value}: boto3 knows no service {service!r} (e.g. s3, dynamodb)")
            services[service] = None if target == EMBEDDED else _url(target)
        return cls(default=default, services=services)

    @property
    def needs_embedded(self) -> bool:
        return self.default is None or None in self.services.values()

    def urls(self, embedded_url: str | None) -> tuple[str, dict[str, str]]:
        """The endpoint of every service without one of its own, and those of the others."""

        def located(url: str | None) -> str:
            if url is not None:
                return url
            if embedded_url is None:
                raise ValueError("a service stays on the embedded emulator: its URL is needed")
            return embedded_url

        return located(self.default), {service: located(url) for service, url in self.services.items()}

    def apply(self, environ: MutableMapping[str, str], embedded_url: str | None) -> None:
        """Point boto3 in `environ` (and so in every process started with it) at these endpoints."""
        default, services = self.urls(embedded_url)
        for variable in [name for name in environ if name.startswith(GLOBAL_VARIABLE)]:
            del environ[variable]
        environ.pop("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", None)
        environ[GLOBAL_VARIABLE] = default
        environ.update({service_variable(service): url for service, url in services.items()})


def service_variable(client_name: str) -> str:
    """boto3's endpoint variable for a client, as botocore derives it (`events` → `AWS_ENDPOINT_URL_EVENTBRIDGE`)."""
    name = SERVICE_NAME_ALIASES.get(client_name, client_name)
    service_id = CLIENT_NAME_TO_HYPHENIZED_SERVICE_ID_OVERRIDES.get(name, name)
    return f"{GLOBAL_VARIABLE}_{service_id.replace('-', '_').upper()}"


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise EndpointError(f"--aws-endpoint {value}: not an http(s) URL such as http://127.0.0.1:4566")
    return value.rstrip("/")
