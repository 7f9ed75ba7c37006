"""Wiring: the domain services with their AWS adapters, built once per process from the settings.

Each builder imports its service inside, so that a function loads only what it uses: the api function
never imports Pillow.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from imgflow import aws
from imgflow.job_store import JobStore
from imgflow.lifecycle import EventPublisher
from imgflow.settings import get_settings
from imgflow.storage import ObjectStorage

if TYPE_CHECKING:
    from imgflow.ingest import IngestService
    from imgflow.uploads import UploadsService
    from imgflow.variants import VariantsService


def job_store() -> JobStore:
    return JobStore(aws.dynamodb().Table(get_settings().jobs_table))


def publisher() -> EventPublisher:
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
        events=publisher(),
        settings=settings,
    )


@lru_cache(maxsize=1)
def variants_service() -> VariantsService:
    from imgflow.variants import VariantsService

    return VariantsService(
        store=job_store(), storage=ObjectStorage(aws.s3()), events=publisher(), settings=get_settings()
    )


@lru_cache(maxsize=1)
def uploads_service() -> UploadsService:
    from imgflow.uploads import UploadsService

    return UploadsService(
        store=job_store(), storage=ObjectStorage(aws.s3()), settings=get_settings(), events=publisher()
    )


def reset() -> None:
    """Forget every service, client and setting (tests and the local runtime call this)."""
    for cached in (ingest_service, variants_service, uploads_service, get_settings):
        cached.cache_clear()
    aws.reset_clients()
