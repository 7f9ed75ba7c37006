"""Reads template.yaml: CloudFormation's short-form tags, parameters, and the intrinsic functions the
local runtime needs to name and wire the same resources (Ref, Fn::GetAtt, Fn::Sub, Fn::Join,
Fn::FindInMap)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# The account a stack is named in until the runtime has asked STS for the real one (the emulator's own):
# moto's default account, which is also what template-only readers (`imgflow token`, tests) assume.
DEFAULT_ACCOUNT_ID = "123456789012"
# What `!Ref AWS::NoValue` resolves to: the property or list item is left out.
NO_VALUE: Any = object()


class _CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's parser where PyYAML has it: a tenth of the pure-Python one's CPU (the runtime reads the
    template at every start)."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(path.read_text(), Loader=_CfnLoader)
    return loaded


@dataclass
class Resolver:
    """Evaluates intrinsic functions against the local stack's physical ids and attributes."""

    stack_name: str
    region: str
    parameters: Mapping[str, str]
    physical_id: Callable[[str], str]
    attribute: Callable[[str, str], str]
    # The template's Conditions, evaluated on use by Fn::If.
    conditions: Mapping[str, Any] = field(default_factory=dict)
    # Parameters of type CommaDelimitedList: a Ref to one is a list.
    list_parameters: frozenset[str] = frozenset()
    account_id: str = DEFAULT_ACCOUNT_ID
    # The template's Mappings, read by Fn::FindInMap.
    mappings: Mapping[str, Any] = field(default_factory=dict)
    pseudo: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.pseudo = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.list_parameters:
            return [item.strip() for item in self.parameters[name].split(",")]
        if name in self.parameters:
            return self.parameters[name]
        return self.physical_id(name)

    def condition(self, name: str) -> bool:
        return bool(self._evaluate(self.conditions[name]))

    def _evaluate(self, expression: Any) -> Any:
        if isinstance(expression, dict) and len(expression) == 1:
            ((key, argument),) = expression.items()
            if key == "Fn::Equals":
                left, right = (self.resolve(item) for item in argument)
                return left == right
            if key == "Fn::Not":
                return not self._evaluate(argument[0])
            if key == "Fn::And":
                return all(self._evaluate(item) for item in argument)
            if key == "Fn::Or":
                return any(self._evaluate(item) for item in argument)
            if key == "Condition":
                return self.condition(argument)
        return self.resolve(expression)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(item) for item in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::If":
                name, when_true, when_false = argument
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::GetAtt":
                logical, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.attribute(logical, attribute)
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::FindInMap":
                mapping, top, second = self.resolve(argument)
                return self.mappings[mapping][top][second]
            if key == "Fn::Join":
                separator, items = argument
                return separator.join(str(item) for item in self.resolve(items))
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def _sub(self, argument: str | list[Any]) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], self.resolve(argument[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and name not in self.pseudo:
                logical, attribute = name.split(".", 1)
                return self.attribute(logical, attribute)
            return self.ref(name)

        return re.sub(r"\$\{([^!}][^}]*)\}", replace, text)


def parameter_defaults(template: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    declared = template.get("Parameters", {})
    unknown = set(overrides) - set(declared)
    if unknown:
        raise ValueError(f"unknown template parameters: {', '.join(sorted(unknown))}")
    values = {name: str(spec["Default"]) for name, spec in declared.items() if "Default" in spec}
    values.update(overrides)
    missing = set(declared) - set(values)
    if missing:
        raise ValueError(f"template parameters without a value: {', '.join(sorted(missing))}")
    return values
