"""Heat: stack templates, stacks, their resources, events and outputs.

Templates go to Heat as the text the person gave (Heat parses its own YAML, so a bare
`heat_template_version` date is fine there). Resources and events are read with `nested_depth`,
so the servers of an `OS::Heat::ResourceGroup` (a nested stack) are found too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from openstack import exceptions as sdk_exc

from .compute import _when
from .connection import Scope, connection_for
from .errors import NotFound, cloud_errors

# Deep enough for a group of groups; Heat's own limit is higher, each level costs Heat a query.
NESTED_DEPTH = 3
GONE = "DELETE_COMPLETE"


@dataclass(frozen=True)
class TemplateParameter:
    """One parameter as Heat's template-validate describes it."""

    name: str
    type: str  # String, Number, Boolean, CommaDelimitedList, Json
    label: str
    description: str = ""
    default: object = None
    has_default: bool = False
    hidden: bool = False  # NoEcho: a password field, never stored by the portal
    allowed_values: tuple = ()
    min_value: float | None = None
    max_value: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    allowed_pattern: str = ""
    constraint_description: str = ""
    custom_constraint: str = ""  # e.g. nova.flavor: checked by Heat itself when the stack is made


@dataclass(frozen=True)
class ParameterGroup:
    label: str
    description: str
    parameters: tuple[str, ...]


@dataclass(frozen=True)
class TemplateValidation:
    description: str
    parameters: tuple[TemplateParameter, ...]
    groups: tuple[ParameterGroup, ...]


@dataclass(frozen=True)
class StackOutput:
    key: str
    value: object
    description: str = ""
    error: str = ""


@dataclass(frozen=True)
class Stack:
    id: str
    name: str
    status: str  # CREATE_IN_PROGRESS, CREATE_COMPLETE, CREATE_FAILED, DELETE_IN_PROGRESS, ...
    status_reason: str
    owner: str  # the Keystone user name Heat records as the stack's owner
    description: str = ""
    tags: tuple[str, ...] = ()
    outputs: tuple[StackOutput, ...] = ()
    parameters: dict = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def in_progress(self) -> bool:
        return self.status.endswith("_IN_PROGRESS")


@dataclass(frozen=True)
class StackResource:
    logical_name: str  # "server"; inside a group, "servers.0"
    type: str
    physical_id: str  # the Nova server's id for an OS::Nova::Server
    status: str
    status_reason: str
    parent: str = ""  # the group (or nested stack) resource it belongs to
    updated_at: datetime | None = None


@dataclass(frozen=True)
class StackEvent:
    id: str
    time: datetime | None
    resource_name: str
    physical_id: str
    status: str
    status_reason: str


def _text(value) -> str:
    return "" if value is None else str(value)


def _number(value):
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _parameter(name: str, raw: dict) -> TemplateParameter:
    def length(key):
        return int(raw[key]) if raw.get(key) is not None else None

    return TemplateParameter(
        name=name, type=_text(raw.get("Type")) or "String", label=_text(raw.get("Label")) or name,
        description=_text(raw.get("Description")), default=raw.get("Default"), has_default="Default" in raw,
        hidden=str(raw.get("NoEcho", "false")).lower() == "true",
        allowed_values=tuple(raw.get("AllowedValues") or ()), min_value=_number(raw.get("MinValue")),
        max_value=_number(raw.get("MaxValue")), min_length=length("MinLength"), max_length=length("MaxLength"),
        allowed_pattern=_text(raw.get("AllowedPattern")),
        constraint_description=_text(raw.get("ConstraintDescription")),
        custom_constraint=_text(raw.get("CustomConstraint")))


def template_validate(*, scope: Scope, template: str) -> TemplateValidation:
    """Heat's reading of a template: its parameters (labels, defaults, constraints) and groups.
    A template Heat cannot use raises BadRequest with Heat's words. Parameter values are not
    checked here (Heat checks them when the stack is made, or previewed)."""
    with cloud_errors():
        answer = connection_for(scope).orchestration.validate_template(template)
        raw = answer.to_dict()
    params = raw.get("parameters") or {}
    groups = tuple(ParameterGroup(label=_text(g.get("label")), description=_text(g.get("description")),
                                  parameters=tuple(g.get("parameters") or ()))
                   for g in raw.get("parameter_groups") or ())
    return TemplateValidation(description=_text(raw.get("description")),
                              parameters=tuple(_parameter(name, p) for name, p in params.items()), groups=groups)


def _output(raw: dict) -> StackOutput:
    return StackOutput(key=_text(raw.get("output_key")), value=raw.get("output_value"),
                       description=_text(raw.get("description")), error=_text(raw.get("output_error")))


def _stack(raw) -> Stack:
    parameters = {k: v for k, v in (raw.parameters or {}).items() if not k.startswith("OS::")}
    return Stack(id=raw.id, name=raw.name, status=_text(raw.status), status_reason=_text(raw.status_reason),
                 owner=_text(getattr(raw, "owner_id", "")), description=_text(raw.description),
                 tags=tuple(raw.tags or ()), outputs=tuple(_output(o) for o in raw.outputs or ()),
                 parameters=parameters, created_at=_when(raw.created_at), updated_at=_when(raw.updated_at))


def stack_list(*, scope: Scope) -> list[Stack]:
    """The project's stacks (not deleted ones; outputs are read by stack_get)."""
    with cloud_errors():
        return [_stack(s) for s in connection_for(scope).orchestration.stacks()]


def stack_get(*, scope: Scope, stack_id: str) -> Stack:
    """One stack with its outputs. A deleted one (DELETE_COMPLETE) raises NotFound."""
    with cloud_errors():
        stack = _stack(connection_for(scope).orchestration.get_stack(stack_id))
    if stack.status == GONE:
        raise NotFound("The stack has been deleted.")
    return stack


def stack_find(*, scope: Scope, name: str) -> Stack | None:
    """The live stack of that name in the project, if any (a retried create looks first)."""
    return next((s for s in stack_list(scope=scope) if s.name == name and s.status != GONE), None)


def _create_body(name: str, template: str, parameters: dict, timeout_mins: int, tags: tuple[str, ...]) -> dict:
    body = {"stack_name": name, "template": template, "parameters": parameters, "timeout_mins": timeout_mins,
            "disable_rollback": True}
    if tags:
        body["tags"] = ",".join(tags)
    return body


def stack_preview(*, scope: Scope, name: str, template: str, parameters: dict) -> None:
    """Ask Heat to check a stack as it would make it (parameter values against their constraints,
    custom constraints such as nova.flavor included) without making anything. A value Heat refuses
    raises BadRequest whose detail is Heat's words: `Parameter 'flavor' is invalid: ...`."""
    with cloud_errors():
        response = connection_for(scope).orchestration.post(
            "/stacks/preview", json=_create_body(name, template, parameters, 60, ()))
        sdk_exc.raise_from_response(response)


def stack_create(*, scope: Scope, name: str, template: str, parameters: dict, timeout_mins: int = 60,
                 tags: tuple[str, ...] = ()) -> str:
    """Start making the stack; returns its id at once (Heat works on it in the background)."""
    with cloud_errors():
        response = connection_for(scope).orchestration.post(
            "/stacks", json=_create_body(name, template, parameters, timeout_mins, tags))
        sdk_exc.raise_from_response(response)
        return response.json()["stack"]["id"]


def stack_delete(*, scope: Scope, stack_id: str) -> None:
    with cloud_errors():
        connection_for(scope).orchestration.delete_stack(stack_id, ignore_missing=True)


def _get_json(scope: Scope, path: str) -> dict:
    with cloud_errors():
        response = connection_for(scope).orchestration.get(path)
        sdk_exc.raise_from_response(response)
        return response.json()


def _resource(raw: dict) -> StackResource:
    parent = _text(raw.get("parent_resource"))
    name = _text(raw.get("resource_name"))
    return StackResource(logical_name=f"{parent}.{name}" if parent else name, type=_text(raw.get("resource_type")),
                         physical_id=_text(raw.get("physical_resource_id")), status=_text(raw.get("resource_status")),
                         status_reason=_text(raw.get("resource_status_reason")), parent=parent,
                         updated_at=_when(raw.get("updated_time")))


def _stack_path(scope: Scope, stack_id: str, stack_name: str) -> str:
    return f"/stacks/{stack_name or stack_get(scope=scope, stack_id=stack_id).name}/{stack_id}"


def stack_resources(*, scope: Scope, stack_id: str, stack_name: str = "",
                    nested_depth: int = NESTED_DEPTH) -> list[StackResource]:
    """Every resource of the stack, those of its nested stacks (a group's servers) included."""
    raw = _get_json(scope, f"{_stack_path(scope, stack_id, stack_name)}/resources?nested_depth={int(nested_depth)}")
    return [_resource(r) for r in raw.get("resources") or ()]


def stack_events(*, scope: Scope, stack_id: str, stack_name: str = "", limit: int = 100,
                 nested_depth: int = NESTED_DEPTH) -> list[StackEvent]:
    """The stack's newest events (its nested stacks' included), oldest first."""
    raw = _get_json(scope, f"{_stack_path(scope, stack_id, stack_name)}/events?nested_depth={int(nested_depth)}"
                           f"&sort_dir=desc&limit={int(limit)}")
    events = [StackEvent(id=_text(e.get("id")), time=_when(e.get("event_time")),
                         resource_name=_text(e.get("resource_name")), physical_id=_text(e.get("physical_resource_id")),
                         status=_text(e.get("resource_status")), status_reason=_text(e.get("resource_status_reason")))
              for e in raw.get("events") or ()]
    return events[::-1]  # Heat's newest-first order, reversed: ties within a second keep their order
