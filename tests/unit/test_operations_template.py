"""The operations parts of template.yaml: every function's logs are kept for a bounded time, every alarm
tells someone, the HTTP API logs its requests, and the dashboard's body is a dashboard CloudWatch takes."""

from __future__ import annotations

import json
import re
from typing import Any

from imgflow_local.template import load_template
from support import ROOT

TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def _of_type(resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in RESOURCES.items() if spec["Type"] == resource_type}


def test_given_every_function_then_its_log_group_has_a_retention() -> None:
    retained = {
        spec["Properties"]["LogGroupName"]["Fn::Sub"]: spec["Properties"]["RetentionInDays"]
        for spec in _of_type("AWS::Logs::LogGroup").values()
    }
    for function in _of_type("AWS::Serverless::Function"):
        assert retained.get(f"/aws/lambda/${{{function}}}") == {"Ref": "LogRetentionDays"}, function


def test_given_every_alarm_then_it_notifies_the_alarm_topic() -> None:
    alarms = _of_type("AWS::CloudWatch::Alarm")
    assert alarms
    for name, alarm in alarms.items():
        assert alarm["Properties"].get("AlarmActions") == [{"Ref": "AlarmTopic"}], name
    # Every dead-letter queue has an alarm.
    watched = {alarm["Properties"]["Dimensions"][0]["Value"].get("Fn::GetAtt", [None])[0] for alarm in alarms.values()}
    dead_letter_queues = {name for name in _of_type("AWS::SQS::Queue") if "DeadLetter" in name}
    assert dead_letter_queues <= watched


def test_given_the_http_api_then_it_writes_access_logs_as_json() -> None:
    settings = RESOURCES["HttpApi"]["Properties"]["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert {"requestId", "status", "routeKey", "sub"} <= set(json.loads(settings["Format"]))


def test_given_the_dashboard_then_its_body_is_json_naming_only_resources_of_the_stack() -> None:
    body, variables = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    names = set(re.findall(r"\$\{([A-Za-z0-9:.]+)\}", body))
    for name in names:
        resource = name.split(".")[0]
        assert resource in RESOURCES or resource in variables or name.startswith("AWS::"), name

    dashboard = json.loads(re.sub(r"\$\{[A-Za-z0-9:.]+\}", "x1", body))

    titles = [widget["properties"]["title"] for widget in dashboard["widgets"]]
    assert len(titles) == len(set(titles)) >= 8
