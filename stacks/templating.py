"""Reading a Heat template in the portal: the YAML as Heat reads it, and the servers and volumes it
will make (for the cost preview and the refusal before Heat is called).

Only what can be known before Heat runs is counted: `OS::Nova::Server` resources, the servers of an
`OS::Heat::ResourceGroup` whose definition is one (times its count), `OS::Cinder::Volume` sizes; a
flavor, count or size given as `{get_param: name}` is resolved from the values the form holds. Other
intrinsic functions cannot be resolved here: such a server is listed as "unknown flavor".
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import yaml

MAX_TEMPLATE_BYTES = 512 * 1024
SERVER = "OS::Nova::Server"
GROUP = "OS::Heat::ResourceGroup"
VOLUME = "OS::Cinder::Volume"


class TemplateUnreadable(ValueError):
    """The text is not a template the portal can read; `str()` says why."""


class _HeatLoader(yaml.SafeLoader):
    """YAML as Heat reads it: a bare date (heat_template_version: 2021-04-16) stays text."""


_HeatLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def template_parse(text: str) -> dict:
    if len(text.encode()) > MAX_TEMPLATE_BYTES:
        raise TemplateUnreadable(f"The template is larger than {MAX_TEMPLATE_BYTES // 1024} KB.")
    try:
        data = yaml.load(text, Loader=_HeatLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise TemplateUnreadable(f"The template is not valid YAML{where}: {getattr(exc, 'problem', exc)}.") from exc
    if not isinstance(data, dict) or "heat_template_version" not in data:
        raise TemplateUnreadable("This is not a Heat template: it has no heat_template_version.")
    if not isinstance(data.get("resources") or {}, dict):
        raise TemplateUnreadable("The template's resources must be a mapping of names to resources.")
    return data


def _resolve(value, values: dict):
    """A literal, or a `{get_param: name}` from the form's values; None when it cannot be known here."""
    if isinstance(value, dict) and set(value) == {"get_param"}:
        name = value["get_param"]
        return values.get(name) if isinstance(name, str) else None
    if isinstance(value, dict | list):
        return None
    return value


def _count(value, values: dict) -> int | None:
    try:
        return max(0, int(float(_resolve(value, values))))
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Needs:
    """What the template will make that the allocation pays for or the quota limits."""

    servers: Counter  # flavor name ("" when it cannot be known here) -> how many
    volume_gb: int
    volumes: int
    uncounted: tuple[str, ...]  # resources whose count could not be known (a group counted by a function)

    @property
    def server_count(self) -> int:
        return sum(self.servers.values())


def template_needs(data: dict, values: dict) -> Needs:
    """The servers (by flavor) and volumes the template makes with these parameter values."""
    servers: Counter = Counter()
    volume_gb = volumes = 0
    uncounted = []
    for name, resource in (data.get("resources") or {}).items():
        if not isinstance(resource, dict):
            continue
        kind, props = resource.get("type"), resource.get("properties") or {}
        count = 1
        if kind == GROUP:
            definition = props.get("resource_def") or {}
            count = _count(props.get("count", 1), values)
            if count is None:
                uncounted.append(name)
                continue
            kind, props = definition.get("type"), definition.get("properties") or {}
        if kind == SERVER:
            flavor = _resolve(props.get("flavor"), values)
            servers[str(flavor) if isinstance(flavor, str) and flavor else ""] += count
        elif kind == VOLUME:
            size = _count(props.get("size"), values)
            volumes += count
            volume_gb += (size or 0) * count
    return Needs(servers=servers, volume_gb=volume_gb, volumes=volumes, uncounted=tuple(uncounted))
