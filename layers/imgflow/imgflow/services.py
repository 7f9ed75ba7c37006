"""Wiring: the domain services with their AWS adapters, built once per process from the settings.

Each builder imports its service inside, so that a function loads only what it uses: the api function
never imports Pillow.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from imgflow import aws
from imgflow.job_store import JobStore
from imgflow.overdue import Deadlines
from imgflow.settings import get_settings
from imgflow.storage import ObjectStorage

if TYPE_CHECKING:
    from imgflow.edits import EditService, ImageEditor
    from imgflow.ingest import IngestService
    from imgflow.lifecycle import EventPublisher
    from imgflow.stats import StatsService
    from imgflow.sweep import SweepService
    from imgflow.uploads import UploadsService
    from imgflow.variants import VariantsService
    from imgflow.webhooks import WebhookService


def job_store() -> JobStore:
    settings = get_settings()
    return JobStore(aws.dynamodb().Table(settings.jobs_table), Deadlines.from_settings(settings))


def publisher() -> EventPublisher:
    from imgflow.lifecycle import EventPublisher

    return EventPublisher(aws.events(), get_settings().event_bus_name)


@lru_cache(maxsize=1)
def ingest_service() -> IngestService:
    from imgflow.ingest import IngestService
    from imgflow.queues import TaskQueue

    settings = get_settings()
    return IngestService(
        store=job_store(),
        storage=ObjectStorage(aws.s3()),
        variants_queue=TaskQueue(aws.sqs(), settings.variants_queue_url),
        edit_queue=TaskQueue(aws.sqs(), settings.edit_queue_url),
        settings=settings,
    )


@lru_cache(maxsize=1)
def variants_service() -> VariantsService:
    from imgflow.variants import VariantsService

    return VariantsService(store=job_store(), storage=ObjectStorage(aws.s3()), settings=get_settings())


@lru_cache(maxsize=1)
def image_editor() -> ImageEditor:
    """The Gemini editor, with its key pool kept for the life of the container (429 cool-downs included)."""
    from imgflow.gemini import GeminiConfig, GeminiEditor

    settings = get_settings()
    return GeminiEditor(
        GeminiConfig(
            api_keys=_gemini_keys(),
            image_model=settings.gemini_image_model,
            text_model=settings.gemini_text_model,
            base_url=settings.gemini_base_url,
            timeout_seconds=settings.gemini_timeout_seconds,
            key_cooldown_seconds=settings.gemini_key_cooldown_seconds,
        )
    )


def _gemini_keys() -> tuple[str, ...]:
    settings = get_settings()
    if settings.gemini_api_keys or not settings.gemini_api_keys_secret:
        return settings.gemini_api_keys
    from aws_lambda_powertools.utilities import parameters

    # The secret holds the keys comma-separated (or one per line); cached by Powertools for 5 minutes.
    secret = str(parameters.get_secret(settings.gemini_api_keys_secret, max_age=300))
    return tuple(key.strip() for key in secret.replace("\n", ",").split(",") if key.strip())


@lru_cache(maxsize=1)
def edit_service() -> EditService:
    from imgflow.edits import EditService
    from imgflow.queues import TaskQueue

    settings = get_settings()
    return EditService(
        store=job_store(),
        storage=ObjectStorage(aws.s3()),
        edit_queue=TaskQueue(aws.sqs(), settings.edit_queue_url),
        settings=settings,
        editor=image_editor,
    )


@lru_cache(maxsize=1)
def uploads_service() -> UploadsService:
    from imgflow.queues import TaskQueue
    from imgflow.quotas import QuotaStore
    from imgflow.uploads import UploadsService

    settings = get_settings()
    return UploadsService(
        store=job_store(),
        storage=ObjectStorage(aws.s3()),
        settings=settings,
        edit_queue=TaskQueue(aws.sqs(), settings.edit_queue_url),
        quota_store=QuotaStore(aws.dynamodb().Table(settings.jobs_table)),
    )


@lru_cache(maxsize=1)
def sweep_service() -> SweepService:
    from imgflow.sweep import SweepService

    settings = get_settings()
    return SweepService(
        store=job_store(),
        deadlines=Deadlines.from_settings(settings),
        storage=ObjectStorage(aws.s3()),
        uploads_bucket=settings.uploads_bucket,
    )


@lru_cache(maxsize=1)
def webhook_service() -> WebhookService:
    from imgflow.queues import TaskQueue
    from imgflow.webhook_store import WebhookStore
    from imgflow.webhooks import WebhookService

    settings = get_settings()
    return WebhookService(
        store=WebhookStore(aws.dynamodb().Table(settings.webhooks_table)),
        delivery_queue=TaskQueue(aws.sqs(), settings.webhook_delivery_queue_url),
        settings=settings,
    )


@lru_cache(maxsize=1)
def stats_service() -> StatsService:
    from imgflow.stats import StatsService
    from imgflow.webhook_store import WebhookStore

    settings = get_settings()
    return StatsService(
        store=job_store(),
        webhooks=WebhookStore(aws.dynamodb().Table(settings.webhooks_table)),
        sqs=aws.sqs(),
        settings=settings,
    )


def reset() -> None:
    """Forget every service, client and setting (tests and the local runtime call this)."""
    for cached in (
        ingest_service,
        variants_service,
        uploads_service,
        sweep_service,
        edit_service,
        webhook_service,
        stats_service,
        image_editor,
        get_settings,
    ):
        cached.cache_clear()
    aws.reset_clients()
