"""The one place that creates Powertools' logger, tracer and metrics; their settings come from the
`POWERTOOLS_*` variables that template.yaml sets."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
