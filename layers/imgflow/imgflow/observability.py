"""The one place that creates Powertools' logger, tracer and metrics; their settings come from the
`POWERTOOLS_*` variables that template.yaml sets."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
# Patching at init would import every library X-Ray can trace (botocore, requests, sqlite3, ...): boto3 is
# the only one called, and imgflow.aws patches it when it makes the first client.
tracer = Tracer(auto_patch=False)
metrics = Metrics()
