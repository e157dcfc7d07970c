from instances.models import Instance, ProjectSync
from instances.services import project_sync


def test_first_sync_mirrors_every_server_with_its_creator(cloud, allocation, user):
    # given a server Nova says this user's Keystone identity made, and one made by someone else with
    # the CLI who wrote this user's email into its metadata (metadata decides nothing)
    cloud.add("made-here", user_id=f"ks-{user.pk}")
    cloud.add("made-by-cli", metadata={"portal:created_by": user.email})
    # when
    result = project_sync(allocation=allocation)
    # then
    assert result["full"] is True
    rows = {i.name: i for i in Instance.objects.all()}
    assert rows["made-here"].created_by == user
    assert rows["made-by-cli"].created_by is None and rows["made-by-cli"].creator_label == ""
    assert rows["made-by-cli"].image_name == "Featured-Ubuntu24"


def test_incremental_sync_asks_only_for_changes_and_sees_deletions(cloud, allocation):
    a = cloud.add("a")
    cloud.add("b")
    project_sync(allocation=allocation)
    mark = ProjectSync.objects.get().changes_since
    assert mark == max(s.updated_at for s in cloud.servers.values())
    # a server changes, one is deleted, one is made outside the portal
    cloud.set(a.id, status="SHUTOFF")
    b = next(s for s in cloud.servers.values() if s.name == "b")
    cloud.set(b.id, status="DELETED")
    cloud.add("c")
    result = project_sync(allocation=allocation)
    assert result["full"] is False
    assert result["servers"] == 3  # only what changed since the mark
    live = dict(Instance.objects.filter(deleted_at__isnull=True).values_list("name", "status"))
    assert live == {"a": "SHUTOFF", "c": "ACTIVE"}


def test_full_sync_marks_servers_missing_from_the_cloud_as_deleted(cloud, allocation):
    s = cloud.add("vanishes")
    project_sync(allocation=allocation)
    del cloud.servers[s.id]  # purged from Nova's database before a changes-since saw it
    project_sync(allocation=allocation, full=True)
    assert Instance.objects.get(server_id=s.id).deleted_at is not None


def test_no_change_sync_writes_nothing_new(cloud, allocation, django_assert_max_num_queries):
    for n in range(20):
        cloud.add(f"s{n}")
    project_sync(allocation=allocation)
    with django_assert_max_num_queries(10):
        project_sync(allocation=allocation)
    assert Instance.objects.count() == 20
