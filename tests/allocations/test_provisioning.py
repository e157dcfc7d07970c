"""Provisioning with the admin gateway faked at portal.cloud.admin: roles and flavor access."""
import pytest

from allocations import provisioning
from allocations.models import KindFlavorAccess
from portal.cloud.compute import Flavor
from tests.fixtures.allocations import make_allocation

pytestmark = pytest.mark.django_db

FLAVORS = [(Flavor("f-m3", "m3.small", 2, 6144, 20), True), (Flavor("f-g3s", "g3.small", 4, 15360, 60), False),
           (Flavor("f-g3xl", "g3.xl", 32, 128000, 60), False), (Flavor("f-r3", "r3.large", 64, 512000, 60), False)]


@pytest.fixture
def nova(monkeypatch):
    """Flavor access as Nova keeps it: flavor id -> set of project ids."""
    access = {"f-g3s": set(), "f-g3xl": set(), "f-r3": set()}
    monkeypatch.setattr("portal.cloud.admin.flavor_list_all", lambda: FLAVORS)
    monkeypatch.setattr("portal.cloud.admin.flavor_access_projects", lambda flavor_id: set(access[flavor_id]))
    monkeypatch.setattr("portal.cloud.admin.flavor_access_add",
                        lambda flavor_id, project_id: access[flavor_id].add(project_id))
    monkeypatch.setattr("portal.cloud.admin.flavor_access_remove",
                        lambda flavor_id, project_id: access[flavor_id].discard(project_id))
    return access


@pytest.mark.parametrize("kind, opened", [
    ("research_cpu", set()), ("research_gpu", {"f-g3s", "f-g3xl"}), ("large_memory", {"f-r3"}),
    ("education", {"f-g3s"})])
def test_private_flavors_are_opened_to_a_project_by_its_allocation_kind(nova, kind, opened):
    allocation = make_allocation(kind=kind, project_id="p-1")
    provisioning.allocation_flavor_access_sync(allocation=allocation)
    assert {f for f, projects in nova.items() if "p-1" in projects} == opened


def test_an_edited_rule_closes_what_it_no_longer_allows(nova):
    allocation = make_allocation(kind="research_gpu", project_id="p-1")
    provisioning.allocation_flavor_access_sync(allocation=allocation)
    KindFlavorAccess.objects.filter(kind="research_gpu").update(flavors="m3.*, g3.small")
    done = provisioning.allocation_flavor_access_sync(allocation=allocation)
    assert done == {"added": [], "removed": ["g3.xl"]}
    assert "p-1" not in nova["f-g3xl"] and "p-1" in nova["f-g3s"]


def test_the_service_user_gets_member_and_loses_any_admin_role(monkeypatch):
    calls = []
    monkeypatch.setattr("portal.cloud.identity.service_user_id", lambda: "svc")
    monkeypatch.setattr("portal.cloud.admin.role_grant", lambda **kw: calls.append(("grant", kw["role"])))
    monkeypatch.setattr("portal.cloud.admin.role_revoke", lambda **kw: calls.append(("revoke", kw["role"])) or True)
    provisioning.service_user_grant(project_id="p-1")
    assert calls == [("grant", "member"), ("revoke", "admin")]


def test_saving_a_kind_rule_in_admin_reapplies_it_on_commit(client, staff_user, django_capture_on_commit_callbacks,
                                                            monkeypatch):
    from portal.models import Operation

    sent = []
    monkeypatch.setattr("allocations.tasks.sync_flavor_access.apply_async", lambda *a, **k: sent.append(a or k))
    course = make_allocation(kind="education", project_id="p-edu")
    make_allocation(kind="research_cpu", project_id="p-cpu")
    client.force_login(staff_user)
    rule = KindFlavorAccess.objects.get(kind="education")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/admin/allocations/kindflavoraccess/{rule.pk}/change/", {"kind": "education",
                                                                               "flavors": "m3.*, g3.medium"})
    assert KindFlavorAccess.objects.get(kind="education").patterns == ["m3.*", "g3.medium"]
    # one status row per project of that kind, each sent to a worker once the change is saved
    rows = Operation.objects.filter(kind="allocation.flavor_access")
    assert [r.target for r in rows] == [f"allocation:{course.pk}"] and len(sent) == 1


def test_a_keystone_user_that_already_has_the_persons_email_as_name_is_never_taken_over(monkeypatch):
    from allocations.models import KeystoneIdentity
    from portal.cloud.admin import User
    from tests.factories import UserFactory

    person = UserFactory()
    taken = {person.email: "ks-someone-else"}  # e.g. made with the CLI, or from LDAP
    ensured = []
    monkeypatch.setattr("portal.cloud.admin.user_find",
                        lambda name, domain: User(taken[name], name) if name in taken else None)
    monkeypatch.setattr("portal.cloud.admin.user_ensure",
                        lambda name, email, password, domain: ensured.append(name) or User("ks-new", name))
    identity = provisioning.keystone_identity_ensure(user=person)
    assert ensured == [f"{person.email}.portal-{person.pk}"]  # the existing user's password is left alone
    assert KeystoneIdentity.objects.get(user=person).keystone_username == identity.keystone_username == ensured[0]
