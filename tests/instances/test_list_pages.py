"""The instance list in pages (PORTAL_INSTANCE_PAGE_SIZE rows), and its live poll, which reads
again only the rows of the page in view (issue 12)."""
import re
from html import unescape

import pytest
from django.urls import reverse

from instances.models import CloudAction, Instance
from instances.services import project_sync

pytestmark = pytest.mark.usefixtures("quiet_sync")


@pytest.fixture
def quiet_sync(monkeypatch):
    """Polls of changing rows ask for a sync soon; here nobody runs it."""
    asked = []
    monkeypatch.setattr("instances.tasks.sync_soon", lambda ids: asked.append(set(ids)))
    return asked


def servers(cloud, allocation, n: int, **kw):
    """n servers s000, s001, ... in the mirror (page 2 by name holds s050..s099)."""
    for i in range(n):
        cloud.add(f"s{i:03d}", **kw)
    project_sync(allocation=allocation)


def row_names(html: str) -> list[str]:
    return re.findall(r'data-testid="instance-row".*?<a href="/instances/\d+/">([^<]+)</a>', html, re.DOTALL)


def page_links(html: str) -> dict[str, str]:
    """The pager's links: their text -> href (unescaped)."""
    return {text.strip(): unescape(href) for href, text in
            re.findall(r'<a class="page-link"[^>]*href="([^"]+)"[^>]*>([^<]+)</a>', html)}


def poll_url(html: str) -> str:
    found = re.search(r'<tbody id="instance-tbody"\s+hx-get="([^"]+)" hx-trigger="every 2s"', html)
    return unescape(found.group(1)) if found else ""


def test_page_two_shows_rows_51_to_100_and_says_so(user_client, cloud, allocation, django_assert_max_num_queries):
    servers(cloud, allocation, 125)
    with django_assert_max_num_queries(9):  # session, user, allocations, count, the page, its failed actions
        page = user_client.get(reverse("instances:list"), {"page": 2}).content.decode()
    assert row_names(page) == [f"s{i:03d}" for i in range(50, 100)]
    assert 'data-testid="page-range">51–100 of 125</span>' in page
    assert '<span class="page-link">2</span>' in page  # the current page, not a link


def test_the_range_line_groups_thousands(user_client, allocation):
    Instance.objects.bulk_create(Instance(allocation=allocation, project_id="proj-1", server_id=f"srv-{i}",
                                          name=f"s{i:04d}", status="ACTIVE") for i in range(1001))
    page = user_client.get(reverse("instances:list"), {"page": 21}).content.decode()
    assert 'data-testid="page-range">1,001–1,001 of 1,001</span>' in page
    assert row_names(page) == ["s1000"]


def test_page_links_keep_the_project_filters_and_sort(user_client, cloud, allocation, user):
    servers(cloud, allocation, 120, user_id=f"ks-{user.pk}")
    cloud.add("not-mine-s999")
    project_sync(allocation=allocation)
    query = {"project": allocation.pk, "mine": "1", "q": "s", "sort": "-name"}
    page = user_client.get(reverse("instances:list"), query).content.decode()
    assert row_names(page) == [f"s{i:03d}" for i in range(119, 69, -1)]  # by name, descending; not the CLI one
    links = page_links(page)
    assert set(links) >= {"2", "3", "Next"} and "Previous" not in links
    for text in ("2", "Next"):
        href = links[text]
        assert href.startswith(reverse("instances:list") + "?")
        assert dict(p.split("=") for p in href.split("?")[1].split("&")) == {
            "project": str(allocation.pk), "mine": "1", "q": "s", "sort": "-name", "page": "2"}
    second = user_client.get(links["Next"]).content.decode()
    assert row_names(second) == [f"s{i:03d}" for i in range(69, 19, -1)]
    assert 'data-testid="page-range">51–100 of 120</span>' in second
    assert unescape(page_links(second)["Previous"]).endswith("&page=1")


def test_an_htmx_page_link_answers_with_the_rows_card_only(user_client, cloud, allocation):
    servers(cloud, allocation, 60)
    rows = user_client.get(reverse("instances:list"), {"page": 2}, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in rows and rows.lstrip().startswith('<div id="instance-rows"')
    assert row_names(rows) == [f"s{i:03d}" for i in range(50, 60)] and "51–60 of 60" in rows


@pytest.mark.parametrize("asked,shown", [("99", "101–120 of 120"), ("0", "101–120 of 120"),
                                         ("two", "1–50 of 120"), ("", "1–50 of 120")])
def test_a_page_out_of_range_or_not_a_number_shows_a_page_that_exists(user_client, cloud, allocation, asked, shown):
    servers(cloud, allocation, 120)
    response = user_client.get(reverse("instances:list"), {"page": asked})
    assert response.status_code == 200 and shown in response.content.decode()


def test_one_page_has_no_pager_but_says_how_many(user_client, cloud, allocation):
    servers(cloud, allocation, 3)
    page = user_client.get(reverse("instances:list")).content.decode()
    assert 'data-testid="page-range">1–3 of 3</span>' in page and "pagination" not in page


def test_the_poll_reads_only_the_rows_in_view(user_client, cloud, allocation, django_assert_max_num_queries):
    servers(cloud, allocation, 120, status="BUILD")
    page = user_client.get(reverse("instances:list"), {"page": 2}).content.decode()
    url = poll_url(page)
    in_view = list(Instance.objects.filter(name__in=[f"s{i:03d}" for i in range(50, 100)])
                   .order_by("name").values_list("pk", flat=True))
    assert url == f"{reverse('instances:rows')}?ids={','.join(map(str, in_view))}"
    with django_assert_max_num_queries(5):  # session, user, the rows, their failed actions
        rows = user_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert rows.lstrip().startswith('<tbody id="instance-tbody"') and "<html" not in rows
    assert row_names(rows) == [f"s{i:03d}" for i in range(50, 100)]
    assert "pagination" not in rows and "page-range" not in rows and poll_url(rows) == url


def test_a_polled_row_shows_its_new_status_and_the_poll_stops_once_all_settle(user_client, cloud, allocation,
                                                                            quiet_sync):
    servers(cloud, allocation, 55)
    growing = cloud.add("s051-new", status="BUILD")
    project_sync(allocation=allocation)
    page = user_client.get(reverse("instances:list"), {"page": 2}).content.decode()
    url = poll_url(page)
    assert url and "building" in page
    rows = user_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert poll_url(rows) == url and "building" in rows
    assert quiet_sync == [{allocation.pk}]  # the changing row's project syncs soon
    cloud.set(growing.id, status="ACTIVE")
    project_sync(allocation=allocation)
    rows = user_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "every 2s" not in rows and "building" not in rows
    row = rows[rows.index('data-server-id="' + growing.id):]
    assert re.search(r'data-testid="status">active<', row[:row.index("</tr>")])


def test_a_deleted_row_leaves_the_poll_and_a_selected_project_keeps_its_column_off(user_client, cloud, allocation):
    gone, stays = cloud.add("gone", status="BUILD"), cloud.add("stays", status="BUILD")
    project_sync(allocation=allocation)
    page = user_client.get(reverse("instances:list"), {"project": allocation.pk}).content.decode()
    url = poll_url(page)
    assert f"project={allocation.pk}&" in url
    cloud.set(gone.id, status="DELETED")
    project_sync(allocation=allocation, full=True)
    rows = user_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert row_names(rows) == ["stays"] and allocation.title not in rows
    assert stays.id in rows


def test_the_poll_shows_no_one_elses_rows(client, cloud, allocation, other_allocation, user):
    theirs = cloud.add("theirs", project_id="proj-2", status="BUILD")
    project_sync(allocation=other_allocation)
    pk = Instance.objects.get(server_id=theirs.id).pk
    client.force_login(user)
    rows = client.get(reverse("instances:rows"), {"ids": str(pk)}, HTTP_HX_REQUEST="true")
    assert rows.status_code == 200 and "theirs" not in rows.content.decode()
    assert client.get(reverse("instances:rows"), {"ids": str(pk), "project": other_allocation.pk}).status_code == 404
    assert client.get(reverse("instances:rows"), {"ids": "1,x"}).status_code == 404


def test_dismiss_in_a_polled_row_returns_to_the_page_in_view(user_client, cloud, allocation):
    servers(cloud, allocation, 60, status="BUILD")
    instance = Instance.objects.get(name="s055")
    CloudAction.objects.create(allocation=allocation, project_id="proj-1", target_id=instance.server_id,
                               target_name=instance.name, action="stop", state="failed", error="broke")
    list_url = f"{reverse('instances:list')}?sort=name&page=2"
    url = poll_url(user_client.get(list_url).content.decode())
    rows = user_client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=f"http://testserver{list_url}")
    assert f'name="next" value="{list_url.replace("&", "&amp;")}"' in rows.content.decode()
    elsewhere = user_client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="https://evil.example/instances/")
    assert f'name="next" value="{reverse("instances:list")}"' in elsewhere.content.decode()


def test_while_a_launch_makes_its_servers_the_list_polls_and_a_cli_made_server_joins_the_page(
        user_client, cloud, allocation, quiet_sync):
    from instances.models import LaunchRequest

    # given a settled page (no poll) of a project where a launch is still making its servers
    servers(cloud, allocation, 3)
    list_url = f"{reverse('instances:list')}?project={allocation.pk}"
    assert poll_url(user_client.get(list_url).content.decode()) == ""
    launch = LaunchRequest.objects.create(allocation=allocation, project_id=allocation.openstack_project_id,
                                          requested_by=allocation.pi, name="class", flavor_id="f",
                                          flavor_name="m3.tiny", image_id="i", state="running", step="creating")
    page = user_client.get(list_url).content.decode()
    url = poll_url(page)
    assert url and row_names(page) == ["s000", "s001", "s002"]
    # when someone makes a server with the CLI and the mirror syncs
    cloud.add("a-cli-made")
    project_sync(allocation=allocation)
    # then the page's next poll (htmx tells it the page in view) answers with the whole list, in place
    response = user_client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=f"http://testserver{list_url}")
    rows = response.content.decode()
    assert response["HX-Retarget"] == "#instance-rows" and response["HX-Reswap"] == "outerHTML"
    assert rows.lstrip().startswith('<div id="instance-rows"') and row_names(rows) == [
        "a-cli-made", "s000", "s001", "s002"]
    assert quiet_sync and allocation.pk in quiet_sync[-1]  # the launch's project syncs soon
    # and once the launch is over and nothing changes, the rows poll no more
    LaunchRequest.objects.filter(pk=launch.pk).update(state="succeeded")
    again = user_client.get(poll_url(rows), HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=f"http://testserver{list_url}")
    assert "HX-Retarget" not in again and poll_url(again.content.decode()) == ""


def test_an_empty_list_polls_itself_while_a_launch_makes_the_first_servers(user_client, cloud, allocation):
    from instances.models import LaunchRequest

    list_url = f"{reverse('instances:list')}?project={allocation.pk}"
    assert "every 2s" not in user_client.get(list_url).content.decode()
    LaunchRequest.objects.create(allocation=allocation, project_id=allocation.openstack_project_id,
                                 requested_by=allocation.pi, name="first", flavor_id="f", flavor_name="m3.tiny",
                                 image_id="i", state="queued", step="queued")
    page = user_client.get(list_url).content.decode()
    assert "No instances yet: a launch is making them." in page
    assert re.search(rf'hx-get="{re.escape(list_url)}" hx-trigger="every 2s" hx-target="#instance-rows"', page)
    cloud.add("first-1", status="BUILD")
    project_sync(allocation=allocation)
    rows = user_client.get(list_url, HTTP_HX_REQUEST="true").content.decode()
    assert row_names(rows) == ["first-1"] and poll_url(rows)
