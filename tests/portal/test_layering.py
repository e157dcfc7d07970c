"""portal/ knows no app: the apps import portal, never the other way. What portal's pages show of
the apps (the menu, the dashboard's panels and activity, metrics) comes from portal.registry,
which the apps fill from their AppConfig.ready()."""
import ast
from pathlib import Path

import pytest
from django.urls import reverse

from portal import registry

ROOT = Path(__file__).resolve().parents[2]
APPS = frozenset({"instances", "allocations", "clusters", "api", "classes", "stacks"})
IMPORTERS = frozenset({"import_module", "__import__"})


def _imported(node) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0:  # relative imports stay inside portal
        return [node.module or ""]
    if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in IMPORTERS
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return [node.args[0].value]  # importlib.import_module("instances.models")
    return []


def test_portal_imports_no_app_anywhere():
    """Module level or inside a function: settings (INSTALLED_APPS) are the only place naming apps."""
    offenders = []
    for path in sorted((ROOT / "portal").rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[1] == "settings":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            offenders += [f"{relative}:{node.lineno} imports {name}" for name in _imported(node)
                          if name.split(".")[0] in APPS]
    assert offenders == [], "\n".join(offenders)


def test_the_rule_catches_an_import_inside_a_function():
    source = "def f():\n    from instances.models import Instance\n    import allocations.selectors\n"
    names = [n for node in ast.walk(ast.parse(source)) for n in _imported(node)]
    assert names == ["instances.models", "allocations.selectors"]


# --- The registry the apps fill -------------------------------------------------------------------


def test_the_menu_comes_from_the_apps_in_their_order():
    labels = [entry.label for entry in registry.navigation()]
    assert labels == ["Dashboard", "Instances", "Volumes", "Network", "Clusters", "Stacks", "Classes", "Allocations",
                      "Credentials"]


@pytest.mark.django_db
def test_the_menu_marks_the_page_in_view_and_shows_unbuilt_sections_disabled(user_client):
    page = user_client.get(reverse("instances:security_groups")).content.decode()
    nav = page[page.index('id="mainnav"'):page.index("</nav>")]
    # the Network dropdown is active on one of its pages, and only that page's item in it
    assert 'data-testid="network-menu"' in nav
    assert f'dropdown-toggle active" href="{reverse("instances:keys")}"' in nav
    assert (f'class="dropdown-item active" href="{reverse("instances:security_groups")}" aria-current="page"'
            in nav)
    assert f'class="dropdown-item" href="{reverse("instances:keys")}"' in nav
    assert f'class="nav-link" href="{reverse("instances:list")}"' in " ".join(nav.split())
    assert "nav-link disabled" not in nav  # every section is built (Classes: issue 11)
    assert f'href="{reverse("clusters:list")}"' in nav and f'href="{reverse("classes:list")}"' in nav


@pytest.mark.django_db
def test_a_registered_entry_shows_only_to_whom_it_is_for(user_client, staff_user, client, monkeypatch):
    monkeypatch.setattr(registry, "_navigation", dict(registry._navigation))
    registry.add_nav_entry(registry.NavEntry("Reports", "admin:index", order=65, visible=lambda u: u.is_staff))
    assert ">Reports</a>" not in user_client.get(reverse("allocations:list")).content.decode()
    client.force_login(staff_user)
    page = client.get(reverse("allocations:list")).content.decode()
    assert page.index(">Allocations</a>") < page.index(">Reports</a>") < page.index(">Credentials</a>")


@pytest.mark.django_db
def test_the_dashboard_is_the_panels_the_apps_register(user_client, user, settings, tmp_path, monkeypatch):
    names = [p.name for p in registry.dashboard_panels()]
    assert names == ["allocations.news", "instances.launch", "instances.projects", "allocations.activity"]
    # given one more panel, between the allocations' news and the instances' projects
    (tmp_path / "test_panel.html").write_text('<p data-testid="test-panel">for {{ note_for }}</p>')
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [*settings.TEMPLATES[0]["DIRS"], tmp_path]}]
    monkeypatch.setattr(registry, "_panels", dict(registry._panels))
    registry.add_dashboard_panel(registry.DashboardPanel(
        "tests.note", order=15, template="test_panel.html", context=lambda *, user: {"note_for": user.email}))

    page = user_client.get("/").content.decode()

    assert f'<p data-testid="test-panel">for {user.email}</p>' in page
    assert page.index('data-testid="get-started"') < page.index('data-testid="test-panel"')


def test_the_apps_register_their_own_collectors_and_task_observers():
    from allocations.metrics import METER_TASK, meter_run_observed
    from instances.metrics import SyncLagCollector

    assert any(isinstance(c, SyncLagCollector) for c in registry.collectors())
    assert meter_run_observed in registry.task_observers(METER_TASK)
