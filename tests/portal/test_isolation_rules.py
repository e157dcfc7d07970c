"""The isolation rule, checked on the code itself: the cloud's admin credentials are reachable
from one gateway module, which only the provisioning module uses; nothing else talks to the SDK."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP_DIRS = ("portal", "allocations", "instances", "clusters", "classes", "stacks")


def _modules():
    for top in APP_DIRS:
        for path in (ROOT / top).rglob("*.py"):
            if "migrations" not in path.parts:
                yield path, ast.parse(path.read_text(), filename=str(path))


def _imports(tree) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def _names(tree) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}


def test_only_provisioning_imports_the_admin_gateway():
    users = sorted(str(p.relative_to(ROOT)) for p, tree in _modules()
                   if any(i == "portal.cloud.admin" or i.startswith("portal.cloud.admin.") for i in _imports(tree)))
    assert users == ["allocations/provisioning.py"], users


def test_only_the_admin_gateway_uses_the_admin_connection():
    users = sorted(str(p.relative_to(ROOT)) for p, tree in _modules() if "admin_connection" in _names(tree))
    assert users == ["portal/cloud/admin.py"], users  # connection.py defines it


def test_nothing_outside_the_gateway_touches_openstacksdk():
    users = sorted(str(p.relative_to(ROOT)) for p, tree in _modules()
                   if any(i == "openstack" or i.startswith(("openstack.", "keystoneauth1")) for i in _imports(tree))
                   and "portal/cloud" not in str(p.relative_to(ROOT)))
    assert users == [], users


def test_gateway_functions_that_touch_a_project_take_a_scope_not_a_project_id():
    """A project id alone cannot reach the cloud: every project call names whose identity it uses."""
    offenders = []
    for path in (ROOT / "portal" / "cloud").glob("*.py"):
        if path.name in ("admin.py", "connection.py", "errors.py"):
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                args = {a.arg for a in node.args.kwonlyargs + node.args.args}
                if "project_id" in args:
                    offenders.append(f"{path.name}:{node.name}")
    assert offenders == []
