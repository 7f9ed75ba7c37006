"""The local stack: every resource of template.yaml created in the emulator, with the same wiring.

What the template declares is read from it here and nowhere else: names, queue settings, redrive
policies, tables and their indexes, bucket CORS and notifications, functions, their environment and
their event sources.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from imgflow_local.auth import LOCAL_AUDIENCE, LOCAL_ISSUER
from imgflow_local.template import DEFAULT_ACCOUNT_ID, Resolver, load_template, parameter_defaults

# What the local stack takes where the template wants a deployment's own values: the local runtime is
# the token issuer, and a page on this machine is the web app (the runtime adds its own demo page).
LOCAL_PARAMETERS = {
    "JwtIssuer": LOCAL_ISSUER,
    "JwtAudience": LOCAL_AUDIENCE,
    "AllowedOrigin": "http://localhost:5173",
    # Tests and developers receive webhooks on loopback.
    "WebhookPrivateTargets": "true",
}


@dataclass(frozen=True)
class SqsEventSource:
    name: str
    queue_arn: str
    batch_size: int
    batching_window: int
    report_batch_item_failures: bool
    maximum_concurrency: int


@dataclass(frozen=True)
class StreamEventSource:
    """A DynamoDB stream event source mapping (`Type: DynamoDB`)."""

    name: str
    table_name: str
    starting_position: str  # TRIM_HORIZON or LATEST
    batch_size: int
    report_batch_item_failures: bool
    bisect_on_error: bool
    # -1: until the record expires from the stream, as Lambda's default.
    maximum_retry_attempts: int
    maximum_record_age: int
    # Where batches given up on are recorded (an SQS queue's ARN), if anywhere.
    on_failure: str | None


@dataclass(frozen=True)
class ScheduleSource:
    name: str
    expression: str  # rate(5 minutes) or cron(...)


@dataclass(frozen=True)
class HttpRoute:
    method: str
    path: str  # API Gateway syntax: /jobs/{job_id}
    # The JWT authorizer that guards the route (the API's default unless the route says NONE).
    authorizer: str | None = None
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    timeout: int
    memory_mb: int
    environment: dict[str, str]
    sqs_sources: tuple[SqsEventSource, ...]
    routes: tuple[HttpRoute, ...]
    schedules: tuple[ScheduleSource, ...] = ()
    # ReservedConcurrentExecutions: at most this many invocations at once; None when not reserved.
    reserved_concurrency: int | None = None
    stream_sources: tuple[StreamEventSource, ...] = ()


@dataclass(frozen=True)
class JwtAuthorizerSpec:
    issuer: str
    audiences: tuple[str, ...]


@dataclass(frozen=True)
class RouteThrottle:
    """The stage's DefaultRouteSettings: each route takes `rate` requests a second, in bursts up to `burst`."""

    rate: float
    burst: int


@dataclass(frozen=True)
class HttpApiSpec:
    cors_origins: tuple[str, ...]
    cors_methods: tuple[str, ...]
    cors_headers: tuple[str, ...]
    cors_max_age: int
    cors_expose_headers: tuple[str, ...] = ()
    authorizers: Mapping[str, JwtAuthorizerSpec] = field(default_factory=dict)
    throttle: RouteThrottle | None = None


@dataclass
class LocalStack:
    template_path: Path
    region: str
    stack_name: str = "imgflow-local"
    parameter_overrides: Mapping[str, str] = field(default_factory=dict)
    # The emulator's account (STS GetCallerIdentity): S3 and EventBridge refuse a queue ARN of another.
    account_id: str = DEFAULT_ACCOUNT_ID
    template: dict[str, Any] = field(init=False)
    resolver: Resolver = field(init=False)

    def __post_init__(self) -> None:
        self.template = load_template(self.template_path)
        declared = self.template.get("Parameters", {})
        local_defaults = {name: value for name, value in LOCAL_PARAMETERS.items() if name in declared}
        self.resolver = Resolver(
            stack_name=self.stack_name,
            region=self.region,
            parameters=parameter_defaults(self.template, {**local_defaults, **self.parameter_overrides}),
            physical_id=self.physical_id,
            attribute=self.attribute,
            conditions=self.template.get("Conditions", {}),
            list_parameters=frozenset(n for n, spec in declared.items() if spec["Type"] == "CommaDelimitedList"),
            account_id=self.account_id,
            mappings=self.template.get("Mappings", {}),
        )

    # --- naming ------------------------------------------------------------------------------------

    @property
    def resources(self) -> dict[str, Any]:
        resources: dict[str, Any] = self.template["Resources"]
        return resources

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """The resources of a type that this stack has (a false `Condition` leaves a resource out)."""
        return {
            name: spec
            for name, spec in self.resources.items()
            if spec["Type"] == resource_type and ("Condition" not in spec or self.resolver.condition(spec["Condition"]))
        }

    def properties(self, logical_id: str) -> dict[str, Any]:
        properties: dict[str, Any] = self.resources[logical_id].get("Properties", {})
        return properties

    def _name(self, logical_id: str, name_property: str | None) -> str:
        declared = self.properties(logical_id).get(name_property) if name_property else None
        return str(self.resolver.resolve(declared)) if declared else f"{self.stack_name}-{logical_id}"

    def physical_id(self, logical_id: str) -> str:
        resource_type = self.resources[logical_id]["Type"]
        if resource_type == "AWS::S3::Bucket":
            return self._name(logical_id, "BucketName").lower()
        if resource_type == "AWS::SQS::Queue":
            return self.queue_url(logical_id)
        if resource_type == "AWS::DynamoDB::Table":
            return self._name(logical_id, "TableName")
        if resource_type == "AWS::Events::EventBus":
            return self._name(logical_id, "Name")
        return f"{self.stack_name}-{logical_id}"

    def queue_name(self, logical_id: str) -> str:
        return self._name(logical_id, "QueueName")

    def queue_url(self, logical_id: str) -> str:
        # The emulator answers with its own host; the name is what matters and the URL is rebuilt on use.
        return f"https://sqs.{self.region}.amazonaws.com/{self.account_id}/{self.queue_name(logical_id)}"

    def attribute(self, logical_id: str, attribute: str) -> str:
        resource_type = self.resources[logical_id]["Type"]
        if resource_type == "AWS::SQS::Queue":
            name = self.queue_name(logical_id)
            return {
                "Arn": f"arn:aws:sqs:{self.region}:{self.account_id}:{name}",
                "QueueName": name,
                "QueueUrl": self.queue_url(logical_id),
            }[attribute]
        if resource_type == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::{self.physical_id(logical_id)}"
        if resource_type == "AWS::DynamoDB::Table" and attribute in {"Arn", "StreamArn"}:
            arn = f"arn:aws:dynamodb:{self.region}:{self.account_id}:table/{self.physical_id(logical_id)}"
            # A stream's label is known once the table exists: this names its table's stream, whatever it is.
            return arn if attribute == "Arn" else f"{arn}/stream/*"
        if resource_type == "AWS::Events::EventBus" and attribute in {"Arn", "Name"}:
            name = self.physical_id(logical_id)
            return name if attribute == "Name" else f"arn:aws:events:{self.region}:{self.account_id}:event-bus/{name}"
        if resource_type == "AWS::Events::Rule" and attribute == "Arn":
            bus = self.resolver.resolve(self.properties(logical_id).get("EventBusName", "default"))
            path = self.physical_id(logical_id) if bus == "default" else f"{bus}/{self.physical_id(logical_id)}"
            return f"arn:aws:events:{self.region}:{self.account_id}:rule/{path}"
        raise KeyError(f"the local runtime does not know {logical_id}.{attribute}")

    def queue_logical_id(self, arn: str) -> str:
        for logical_id in self.of_type("AWS::SQS::Queue"):
            if self.attribute(logical_id, "Arn") == arn:
                return logical_id
        raise KeyError(f"no queue in the template has the ARN {arn}")

    # --- functions ---------------------------------------------------------------------------------

    def functions(self) -> list[FunctionSpec]:
        defaults = self.template.get("Globals", {}).get("Function", {})
        specs = []
        for logical_id, resource in self.of_type("AWS::Serverless::Function").items():
            props = resource["Properties"]
            environment = {
                **defaults.get("Environment", {}).get("Variables", {}),
                **props.get("Environment", {}).get("Variables", {}),
            }
            sqs_sources, routes, schedules, streams = [], [], [], []
            for event_name, event in props.get("Events", {}).items():
                event_props = self.resolver.resolve(event["Properties"])
                if event["Type"] == "SQS":
                    sqs_sources.append(
                        SqsEventSource(
                            name=event_name,
                            queue_arn=event_props["Queue"],
                            batch_size=int(event_props.get("BatchSize", 10)),
                            batching_window=int(event_props.get("MaximumBatchingWindowInSeconds", 0)),
                            report_batch_item_failures="ReportBatchItemFailures"
                            in event_props.get("FunctionResponseTypes", []),
                            maximum_concurrency=int(
                                event_props.get("ScalingConfig", {}).get("MaximumConcurrency", 1000)
                            ),
                        )
                    )
                elif event["Type"] == "HttpApi":
                    auth = event_props.get("Auth", {})
                    authorizer = auth.get("Authorizer", self._default_authorizer())
                    routes.append(
                        HttpRoute(
                            method=event_props["Method"].upper(),
                            path=event_props["Path"],
                            authorizer=None if authorizer in {None, "NONE"} else authorizer,
                            scopes=tuple(auth.get("AuthorizationScopes", ())),
                        )
                    )
                elif event["Type"] == "Schedule":
                    schedules.append(ScheduleSource(name=event_name, expression=event_props["Schedule"]))
                elif event["Type"] == "DynamoDB":
                    streams.append(_stream_source(event_name, event_props))
            specs.append(
                FunctionSpec(
                    logical_id=logical_id,
                    code_uri=self.template_path.parent / props["CodeUri"],
                    handler=props["Handler"],
                    timeout=int(self.resolver.resolve(props.get("Timeout", defaults.get("Timeout", 3)))),
                    memory_mb=int(props.get("MemorySize", defaults.get("MemorySize", 128))),
                    environment={k: str(v) for k, v in self.resolver.resolve(environment).items()},
                    sqs_sources=tuple(sqs_sources),
                    routes=tuple(routes),
                    schedules=tuple(schedules),
                    reserved_concurrency=_optional_int(
                        self.resolver.resolve(props.get("ReservedConcurrentExecutions"))
                    ),
                    stream_sources=tuple(streams),
                )
            )
        return specs

    def _http_api_properties(self) -> dict[str, Any]:
        apis = self.of_type("AWS::Serverless::HttpApi")
        properties: dict[str, Any] = next(iter(apis.values())).get("Properties", {})
        return properties

    def _default_authorizer(self) -> str | None:
        default: str | None = self._http_api_properties().get("Auth", {}).get("DefaultAuthorizer")
        return default

    def http_api(self) -> HttpApiSpec:
        properties = self._http_api_properties()
        cors = self.resolver.resolve(properties.get("CorsConfiguration", {}))
        authorizers = self.resolver.resolve(properties.get("Auth", {}).get("Authorizers", {}))
        route_settings = self.resolver.resolve(properties.get("DefaultRouteSettings", {}))
        throttle = None
        if "ThrottlingRateLimit" in route_settings or "ThrottlingBurstLimit" in route_settings:
            throttle = RouteThrottle(
                rate=float(route_settings.get("ThrottlingRateLimit", 0)),
                burst=int(route_settings.get("ThrottlingBurstLimit", 0)),
            )
        return HttpApiSpec(
            cors_origins=tuple(cors.get("AllowOrigins", [])),
            cors_methods=tuple(cors.get("AllowMethods", [])),
            cors_headers=tuple(cors.get("AllowHeaders", [])),
            cors_max_age=int(cors.get("MaxAge", 0)),
            cors_expose_headers=tuple(cors.get("ExposeHeaders", [])),
            authorizers={
                name: JwtAuthorizerSpec(
                    issuer=authorizer["JwtConfiguration"]["issuer"],
                    audiences=tuple(authorizer["JwtConfiguration"]["audience"]),
                )
                for name, authorizer in authorizers.items()
                if "JwtConfiguration" in authorizer
            },
            throttle=throttle,
        )

    # --- creation ----------------------------------------------------------------------------------

    def create(self, session: boto3.session.Session) -> None:
        """Create every resource in the emulator that `session` talks to, in dependency order."""
        self._create_queues(session.client("sqs"))
        self._create_tables(session.client("dynamodb"))
        self._create_buses(session.client("events"))
        self._create_rules(session.client("events"))
        self._create_buckets(session.client("s3"))

    def _create_queues(self, sqs: Any) -> None:
        queues = self.of_type("AWS::SQS::Queue")
        # Dead-letter queues first: a redrive policy must name a queue that exists.
        for logical_id in sorted(queues, key=lambda q: "RedrivePolicy" in self.properties(q)):
            props = self.resolver.resolve(self.properties(logical_id))
            attributes = {
                key: str(props[key])
                for key in (
                    "VisibilityTimeout",
                    "MessageRetentionPeriod",
                    "DelaySeconds",
                    "ReceiveMessageWaitTimeSeconds",
                )
                if key in props
            }
            if "RedrivePolicy" in props:
                attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
            sqs.create_queue(QueueName=self.queue_name(logical_id), Attributes=attributes)

    def _create_tables(self, dynamodb: Any) -> None:
        for logical_id in self.of_type("AWS::DynamoDB::Table"):
            props = self.resolver.resolve(self.properties(logical_id))
            name = self.physical_id(logical_id)
            arguments: dict[str, Any] = {
                "TableName": name,
                "AttributeDefinitions": props["AttributeDefinitions"],
                "KeySchema": props["KeySchema"],
                "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
            }
            for indexes in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
                if indexes in props:
                    arguments[indexes] = props[indexes]
            if "StreamSpecification" in props:
                view = props["StreamSpecification"]["StreamViewType"]
                arguments["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
            dynamodb.create_table(**arguments)
            ttl = props.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                dynamodb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                )

    def _create_buses(self, events: Any) -> None:
        for logical_id in self.of_type("AWS::Events::EventBus"):
            events.create_event_bus(Name=self.physical_id(logical_id))

    def _create_rules(self, events: Any) -> None:
        """Rules that route a bus's events to queues (the emulator delivers them, as EventBridge does)."""
        for logical_id in self.of_type("AWS::Events::Rule"):
            props = self.resolver.resolve(self.properties(logical_id))
            name, bus = self.physical_id(logical_id), props.get("EventBusName", "default")
            events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(props["EventPattern"]))
            targets = [{"Id": target["Id"], "Arn": target["Arn"]} for target in props.get("Targets", [])]
            if any(":sqs:" not in target["Arn"] for target in targets):
                raise ValueError(f"{logical_id}: the local runtime routes events to SQS queues only")
            events.put_targets(Rule=name, EventBusName=bus, Targets=targets)

    def _create_buckets(self, s3: Any) -> None:
        for logical_id in self.of_type("AWS::S3::Bucket"):
            props = self.resolver.resolve(self.properties(logical_id))
            name = self.physical_id(logical_id)
            if self.region == "us-east-1":
                s3.create_bucket(Bucket=name)
            else:
                s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})
            if "PublicAccessBlockConfiguration" in props:
                s3.put_public_access_block(
                    Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
                )
            if "CorsConfiguration" in props:
                s3.put_bucket_cors(
                    Bucket=name,
                    CORSConfiguration={
                        "CORSRules": [_cors_rule(rule) for rule in props["CorsConfiguration"]["CorsRules"]]
                    },
                )
            queue_notifications = props.get("NotificationConfiguration", {}).get("QueueConfigurations", [])
            if queue_notifications:
                s3.put_bucket_notification_configuration(
                    Bucket=name,
                    NotificationConfiguration={
                        "QueueConfigurations": [_queue_notification(n) for n in queue_notifications]
                    },
                )


def _stream_source(name: str, props: Mapping[str, Any]) -> StreamEventSource:
    # arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL
    table_name = str(props["Stream"]).split(":", 5)[5].split("/")[1]
    on_failure = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    return StreamEventSource(
        name=name,
        table_name=table_name,
        starting_position=props["StartingPosition"],
        batch_size=int(props.get("BatchSize", 100)),
        report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
        bisect_on_error=bool(props.get("BisectBatchOnFunctionError", False)),
        maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
        maximum_record_age=int(props.get("MaximumRecordAgeInSeconds", -1)),
        on_failure=None if on_failure is None else str(on_failure),
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _cors_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    converted = {
        key: rule[key]
        for key in ("AllowedMethods", "AllowedOrigins", "AllowedHeaders", "ExposedHeaders")
        if key in rule
    }
    if "MaxAge" in rule:
        converted["MaxAgeSeconds"] = int(rule["MaxAge"])
    return converted


def _queue_notification(notification: Mapping[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {"QueueArn": notification["Queue"], "Events": [notification["Event"]]}
    rules = notification.get("Filter", {}).get("S3Key", {}).get("Rules", [])
    if rules:
        converted["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
    return converted
