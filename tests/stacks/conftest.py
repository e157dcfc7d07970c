"""Heat faked at the gateway (portal.cloud.orchestration), on the instances' unit fake cloud.

`heat.validate` answers like Heat's template-validate, read from the template's own parameters;
`heat.stack_create` and friends keep stacks in memory; `heat.calls` counts every call.
"""
from __future__ import annotations

import itertools
from collections import Counter

import pytest

from portal.cloud import compute, orchestration
from portal.cloud.errors import BadRequest, NotFound
from stacks.templating import template_parse
from tests.instances.conftest import FLAVORS, allocation, cloud  # noqa: F401 - fixtures used here

TINY = compute.Flavor("f-m3-tiny", "m3.tiny", 1, 3072, 20, {"portal:family": "cpu"})


def validate_like_heat(text: str) -> orchestration.TemplateValidation:
    """What Heat's template-validate answers for this template (its parameters and groups)."""
    data = template_parse(text)
    params = []
    for name, p in (data.get("parameters") or {}).items():
        raw = {"Type": {"string": "String", "number": "Number", "boolean": "Boolean", "json": "Json",
                        "comma_delimited_list": "CommaDelimitedList"}[p.get("type", "string")],
               "Label": p.get("label", name), "Description": p.get("description", ""),
               "NoEcho": "true" if p.get("hidden") else "false"}
        if "default" in p:
            raw["Default"] = p["default"]
        for c in p.get("constraints") or []:
            if "allowed_values" in c:
                raw["AllowedValues"] = c["allowed_values"]
            if "range" in c:
                raw.update({"MinValue": c["range"].get("min"), "MaxValue": c["range"].get("max")})
            if "length" in c:
                raw.update({"MinLength": c["length"].get("min"), "MaxLength": c["length"].get("max")})
            if "allowed_pattern" in c:
                raw["AllowedPattern"] = c["allowed_pattern"]
            if "custom_constraint" in c:
                raw["CustomConstraint"] = c["custom_constraint"]
            if c.get("description"):
                raw["ConstraintDescription"] = c["description"]
        params.append(orchestration._parameter(name, raw))
    groups = tuple(orchestration.ParameterGroup(g.get("label", ""), g.get("description", ""),
                                                tuple(g.get("parameters", ())))
                   for g in data.get("parameter_groups") or ())
    return orchestration.TemplateValidation(data.get("description", ""), tuple(params), groups)


class FakeHeat:
    def __init__(self):
        self.calls: Counter = Counter()
        self.stacks: dict[str, orchestration.Stack] = {}
        self.resources: dict[str, list[orchestration.StackResource]] = {}
        self.events: dict[str, list[orchestration.StackEvent]] = {}
        self.created: list[dict] = []  # what stack_create was given
        self.preview_refusal = ""  # Heat's words for the next preview, e.g. "Parameter 'x' is invalid: ..."
        self.create_refusal = ""
        self.ids = itertools.count(1)

    def template_validate(self, *, scope, template):
        self.calls["template_validate"] += 1
        return validate_like_heat(template)

    def stack_preview(self, *, scope, name, template, parameters):
        self.calls["stack_preview"] += 1
        if self.preview_refusal:
            raise BadRequest(f"The cloud rejected the request: {self.preview_refusal}", detail=self.preview_refusal)

    def stack_create(self, *, scope, name, template, parameters, timeout_mins=60, tags=()):
        self.calls["stack_create"] += 1
        if self.create_refusal:
            raise BadRequest(f"The cloud rejected the request: {self.create_refusal}", detail=self.create_refusal)
        stack_id = f"stack-{next(self.ids)}"
        self.created.append({"name": name, "parameters": dict(parameters), "scope": scope, "tags": tags})
        self.stacks[stack_id] = orchestration.Stack(stack_id, name, "CREATE_IN_PROGRESS", "Stack CREATE started",
                                                    scope.identity.username, tags=tuple(tags))
        self.events[stack_id] = [orchestration.StackEvent("e1", None, name, stack_id, "CREATE_IN_PROGRESS",
                                                          "Stack CREATE started")]
        self.resources[stack_id] = []
        return stack_id

    def finish(self, stack_id: str, *, servers: list[str], status: str = "CREATE_COMPLETE", outputs=()):
        """Heat is done: the stack's servers (in a group), its outputs, its last events."""
        from dataclasses import replace

        self.stacks[stack_id] = replace(self.stacks[stack_id], status=status, outputs=tuple(outputs),
                                        status_reason="Stack CREATE completed successfully")
        self.resources[stack_id] = [orchestration.StackResource("servers", "OS::Heat::ResourceGroup", "nested-1",
                                                                "CREATE_COMPLETE", "state changed")] + [
            orchestration.StackResource(f"servers.{i}", "OS::Nova::Server", sid, "CREATE_COMPLETE", "state changed",
                                        parent="servers") for i, sid in enumerate(servers)]
        self.events[stack_id].append(orchestration.StackEvent("e2", None, "servers", "nested-1", status,
                                                              "state changed"))

    def stack_get(self, *, scope, stack_id):
        self.calls["stack_get"] += 1
        stack = self.stacks.get(stack_id)
        if stack is None or stack.status == "DELETE_COMPLETE":
            raise NotFound()
        return stack

    def stack_find(self, *, scope, name):
        self.calls["stack_find"] += 1
        return next((s for s in self.stacks.values() if s.name == name and s.status != "DELETE_COMPLETE"), None)

    def stack_list(self, *, scope):
        self.calls["stack_list"] += 1
        return [s for s in self.stacks.values() if s.status != "DELETE_COMPLETE"]

    def stack_delete(self, *, scope, stack_id):
        self.calls["stack_delete"] += 1
        from dataclasses import replace

        if stack_id in self.stacks:
            self.stacks[stack_id] = replace(self.stacks[stack_id], status="DELETE_IN_PROGRESS")

    def stack_resources(self, *, scope, stack_id, stack_name="", nested_depth=3):
        self.calls["stack_resources"] += 1
        self.stack_get(scope=scope, stack_id=stack_id)
        return list(self.resources.get(stack_id, []))

    def stack_events(self, *, scope, stack_id, stack_name="", limit=100, nested_depth=3):
        self.calls["stack_events"] += 1
        self.stack_get(scope=scope, stack_id=stack_id)
        return list(self.events.get(stack_id, []))


@pytest.fixture
def heat(cloud, monkeypatch):  # noqa: F811 - fixture imported above
    fake = FakeHeat()
    for name in ("template_validate", "stack_preview", "stack_create", "stack_get", "stack_find", "stack_list",
                 "stack_delete", "stack_resources", "stack_events"):
        monkeypatch.setattr(orchestration, name, getattr(fake, name))
    monkeypatch.setattr(compute, "flavor_list", lambda **kw: [*FLAVORS, TINY])
    return fake


@pytest.fixture(autouse=True)
def seeded_templates(db):
    from stacks.seeds import templates_seed

    templates_seed()
