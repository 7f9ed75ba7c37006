"""The artifacts carry botocore's models of the services the functions call, and no others."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import botocore

import package

LAYER = Path(__file__).resolve().parents[2] / "layers" / "imgflow"


def test_given_installed_sdks_when_pruned_then_only_the_called_services_models_and_the_shared_files_stay(
    tmp_path: Path,
) -> None:
    for folder in ("botocore/data/s3/2006-03-01", "botocore/data/lambda/2015-03-31", "boto3/data/ec2/2016-11-15"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "service-2.json").write_text("{}")
    (tmp_path / "boto3" / "data" / "dynamodb").mkdir()
    (tmp_path / "botocore" / "data" / "endpoints.json").write_text("{}")

    package.prune_sdk_models(tmp_path)
    package.prune_sdk_models(tmp_path / "no-sdk-here")  # an artifact without them is left alone

    assert sorted(path.name for path in (tmp_path / "botocore" / "data").iterdir()) == ["endpoints.json", "s3"]
    assert [path.name for path in (tmp_path / "boto3" / "data").iterdir()] == ["dynamodb"]
    assert (tmp_path / "botocore" / "data" / "s3" / "2006-03-01" / "service-2.json").exists()


def test_given_a_pruned_sdk_when_every_client_the_functions_make_is_made_then_each_loads_and_no_other_does(
    tmp_path: Path,
) -> None:
    for sdk in (botocore, boto3):
        shutil.copytree(Path(str(sdk.__file__)).parent, tmp_path / sdk.__name__, ignore=package.IGNORED)
    package.prune_sdk_models(tmp_path)
    # Every client imgflow.aws makes (each of its factories), and the one Powertools' parameters make for
    # the Gemini keys' secret; then one the functions never make, which the pruned SDK must not know.
    script = f"""
import json, sys
sys.path[:0] = [{str(tmp_path)!r}, {str(LAYER)!r}]
import boto3, botocore.exceptions
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from imgflow import aws
made = [name for name, factory in vars(aws).items()
        if hasattr(factory, "cache_clear") and not name.startswith("_") and factory()]
SecretsProvider()
try:
    boto3.session.Session().client("lambda")
    unknown = False
except botocore.exceptions.UnknownServiceError:
    unknown = True
print(json.dumps({{"sdk": boto3.__file__, "made": sorted(made), "lambda_unknown": unknown}}))
"""
    environment = {
        # As in Lambda, where the X-Ray SDK samples locally (elsewhere it makes an X-Ray client to ask).
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "PATH": "",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    done = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["sdk"].startswith(str(tmp_path))
    assert result["made"] == ["dynamodb", "dynamodb_client", "events", "s3", "sqs"]
    assert result["lambda_unknown"]
