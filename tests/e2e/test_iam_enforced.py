"""With IAM enforced by the local runtime, a permission missing from template.yaml fails the flow as it
would on AWS: here the api function's role without S3 on the uploads bucket. Its presigned POST is signed
by that role, as on AWS, so the browser's upload is refused and nothing is stored; the intact template's
flow is every other end-to-end test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from imgflow_local.template import load_template
from support import ROOT

if TYPE_CHECKING:
    from e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e


def template_without(tmp_path: Path, function: str, policy: dict[str, Any]) -> Path:
    """A copy of template.yaml without one of `function`'s policies (code paths made absolute)."""
    template = load_template(ROOT / "template.yaml")
    resources: dict[str, Any] = template["Resources"]
    for resource in resources.values():
        properties = resource.get("Properties", {})
        for name in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(name), str):
                properties[name] = str(ROOT / properties[name])
    policies = resources[function]["Properties"]["Policies"]
    kept = [declared for declared in policies if declared != policy]
    assert len(kept) == len(policies) - 1, f"{function} has no {policy} to remove"
    resources[function]["Properties"]["Policies"] = kept
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def api_without_uploads_bucket(
    serve_imgflow: Callable[..., AbstractContextManager[Pipeline]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    removed = {"S3CrudPolicy": {"BucketName": {"Ref": "UploadsBucket"}}}
    template = template_without(tmp_path_factory.mktemp("iam"), "ApiFunction", removed)
    with serve_imgflow("--template", str(template)) as served:
        yield served


def test_given_the_api_role_without_the_uploads_bucket_then_the_browser_upload_is_refused_and_nothing_stored(
    api_without_uploads_bucket: Pipeline,
) -> None:
    pipeline = api_without_uploads_bucket
    data = b"\xff\xd8\xff\xe0" + bytes(1024) + b"\xff\xd9"

    created = pipeline.create_upload("photo.jpg", "image/jpeg", len(data))
    assert created.status_code == 201, created.text
    posted = pipeline.post_form(created.json(), data, "photo.jpg")

    assert posted.status_code == 403
    assert "<Code>AccessDenied</Code>" in posted.text
    key = created.json()["upload"]["fields"]["key"]
    assert pipeline.s3.list_objects_v2(Bucket=pipeline.uploads_bucket, Prefix=key).get("KeyCount") == 0
    assert "IAM enforced" in "\n".join(pipeline.log)
