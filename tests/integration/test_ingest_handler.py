from __future__ import annotations

from typing import Any

import ingest_handler
from conftest import EmulatedAws, FakeLambdaContext
from helpers import HOPPER, create_api_job, lifecycle_events, put_upload, tap_lifecycle_events, upload_notification


def test_smoke(aws: EmulatedAws, lambda_context: FakeLambdaContext) -> None:
    tap_lifecycle_events(aws)
    created = create_api_job(aws, lambda_context)
    key = f"uploads/{created['job_id']}/original"
    etag = put_upload(aws, key, HOPPER)
    response: Any = ingest_handler.lambda_handler(upload_notification(aws, key, etag, 6412), lambda_context)
    print(response)
    print(aws.table().scan()["Items"])
    print(aws.drain("VariantsQueue"))
    print(lifecycle_events(aws))
