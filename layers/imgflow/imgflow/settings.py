"""Every setting of imgflow, read from the environment once, in one typed object.

template.yaml sets these for each function; the local runtime sets the same from the same template.
Domain code receives values from here and never reads `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from imgflow.models import ImageLimits, OutputFormat, VariantPreset

DEFAULT_PRESETS = (
    VariantPreset(name="thumb", long_edge=150),
    VariantPreset(name="small", long_edge=600),
    VariantPreset(name="large", long_edge=1200),
    VariantPreset(name="full", long_edge=4096),
)


class Settings(BaseModel):
    """Read with `from_environment`: one variable per field, its name upper-cased. A plain model, not
    pydantic-settings, whose import (dotenv, CLI and cloud sources, a scan of every installed package)
    was ~90 ms of CPU in every cold start."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    jobs_table: str
    idempotency_table: str = ""
    uploads_bucket: str
    media_bucket: str
    variants_queue_url: str = ""
    edit_queue_url: str = ""
    event_bus_name: str = "default"

    # GET /stats: a token with this scope sees everyone's figures and the queues; the spend estimate's price.
    admin_scope: str = "imgflow/admin"
    gemini_cost_per_call: Annotated[float, Field(ge=0)] = 0.039
    # name=url pairs, comma-separated: the queues whose depths operators see in GET /stats.
    monitored_queues: dict[str, str] = Field(default_factory=dict)

    # Webhooks (imgflow.webhooks). Private targets (loopback, the VPC) only where the deployment says so:
    # the local runtime, whose tests and developers receive on loopback.
    webhooks_table: str = ""
    webhook_delivery_queue_url: str = ""
    webhook_private_targets: bool = False
    max_webhooks_per_owner: Annotated[int, Field(ge=1, le=100)] = 10
    webhook_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 10.0

    # Limits of an upload: bytes are also pinned by the presigned POST policy.
    max_upload_bytes: PositiveInt = 25 * 1024 * 1024
    max_pixels: PositiveInt = 60_000_000
    max_side: PositiveInt = 16_384
    max_frames: PositiveInt = 300
    max_animation_pixels: PositiveInt = 100_000_000

    # Whose jobs objects dropped straight into the uploads bucket make: a backend that drops them can sign
    # in with a token of this `sub` to list and delete them through the API.
    direct_drop_owner: Annotated[str, Field(min_length=1, max_length=256)] = "system"

    upload_url_ttl_seconds: Annotated[int, Field(ge=60, le=3600)] = 900
    download_url_ttl_seconds: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = 3600
    job_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    # The queue's maxReceiveCount: the attempt that reaches it must end the job instead of retrying.
    max_receive_count: Annotated[int, Field(ge=1)] = 5
    # Each step's function timeout and its queue's visibility timeout (template.yaml's Steps mapping): how
    # long a step may take before the sweep takes it for given up (imgflow.overdue).
    ingest_timeout_seconds: PositiveInt = 60
    ingest_visibility_seconds: PositiveInt = 360
    variants_timeout_seconds: PositiveInt = 120
    variants_visibility_seconds: PositiveInt = 720
    edit_timeout_seconds: PositiveInt = 900
    edit_visibility_seconds: PositiveInt = 5400

    variant_presets: tuple[VariantPreset, ...] = DEFAULT_PRESETS
    default_formats: tuple[OutputFormat, ...] = ("webp",)
    webp_quality: Annotated[int, Field(ge=1, le=100)] = 85
    avif_quality: Annotated[int, Field(ge=1, le=100)] = 60
    jpeg_quality: Annotated[int, Field(ge=1, le=100)] = 82

    # Edits. Keys come from GEMINI_API_KEYS (comma-separated) or, on AWS, a Secrets Manager secret.
    max_edit_chain: Annotated[int, Field(ge=1, le=50)] = 5
    max_edits_per_request: Annotated[int, Field(ge=1, le=10)] = 10
    # Bounds the job item (DynamoDB's 400 KB per item) and what one client may ask of one image.
    max_edits_per_job: Annotated[int, Field(ge=1, le=100)] = 20
    provider_max_edge: Annotated[int, Field(ge=64, le=4096)] = 2048
    gemini_api_keys: tuple[str, ...] = ()
    gemini_api_keys_secret: str = ""
    gemini_base_url: str | None = None
    gemini_image_model: str = "gemini-2.5-flash-image"
    gemini_text_model: str = "gemini-2.5-flash"
    gemini_timeout_seconds: Annotated[float, Field(gt=0, le=900)] = 240.0
    gemini_key_cooldown_seconds: Annotated[float, Field(ge=0)] = 60.0
    # Backoff of retried edits (through the queue): base * 2^(attempt-1), jittered, at most the cap.
    edit_retry_base_seconds: Annotated[float, Field(gt=0)] = 10.0
    edit_retry_cap_seconds: Annotated[float, Field(gt=0, le=43200)] = 900.0

    # Owners and their limits (the api function). Windows are fixed UTC clock hours and days.
    edit_scope: str = "imgflow/edit"
    uploads_per_hour_per_owner: Annotated[int, Field(ge=1)] = 100
    uploads_per_day_per_owner: Annotated[int, Field(ge=1)] = 1000
    upload_bytes_per_day_per_owner: Annotated[int, Field(ge=1)] = 5 * 2**30
    edits_per_hour_per_owner: Annotated[int, Field(ge=1)] = 60
    ai_edits_per_day_per_owner: Annotated[int, Field(ge=0)] = 100
    ai_edits_per_day_total: Annotated[int, Field(ge=0)] = 2000

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        """Fails fast (a ValidationError naming the field) on a missing or malformed variable. Lists are
        comma-separated, as template.yaml writes them; names match whatever their case."""
        values = {name.lower(): value for name, value in environ.items()}
        return cls.model_validate({field: values[field] for field in cls.model_fields if field in values})

    @field_validator("variant_presets", mode="before")
    @classmethod
    def _parse_presets(cls, raw: object) -> object:
        # "thumb=150,small=600" keeps the environment variable readable in template.yaml.
        if not isinstance(raw, str):
            return raw
        presets = []
        for item in raw.split(","):
            name, _, edge = item.strip().partition("=")
            presets.append(VariantPreset(name=name, long_edge=int(edge)))
        return tuple(presets)

    @field_validator("monitored_queues", mode="before")
    @classmethod
    def _parse_queues(cls, raw: object) -> object:
        if not isinstance(raw, str):
            return raw
        pairs = (item.strip().partition("=") for item in raw.split(",") if item.strip())
        return {name.strip(): url.strip() for name, _, url in pairs}

    @field_validator("gemini_api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, raw: object) -> object:
        if not isinstance(raw, str):
            return raw
        return tuple(key.strip() for key in raw.split(",") if key.strip())

    @field_validator("default_formats", mode="before")
    @classmethod
    def _parse_formats(cls, raw: object) -> object:
        if not isinstance(raw, str):
            return raw
        return tuple(f.strip() for f in raw.split(",") if f.strip())

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(
            max_bytes=self.max_upload_bytes,
            max_pixels=self.max_pixels,
            max_side=self.max_side,
            max_frames=self.max_frames,
            max_animation_pixels=self.max_animation_pixels,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process; fails fast on a missing or malformed variable. Tests clear the cache."""
    return Settings.from_environment(os.environ)
