"""One helper picks the allocation a request names (pages: `project`; the API: an id and the
token's reach): a member's choice, the first by default, and the same 404 for anything else."""
import pytest
from django.http import Http404
from django.test import RequestFactory

from allocations.selectors import MAX_PK, allocation_for_request, allocation_list_for_user, allocation_pick
from tests.factories import UserFactory
from tests.fixtures.allocations import make_allocation

pytestmark = pytest.mark.django_db


@pytest.fixture
def mine():
    user = UserFactory()
    return user, make_allocation(pi=user, title="Older"), make_allocation(pi=user, project_id="", title="Newer")


def test_no_choice_is_none_or_the_first_of_those_offered(mine):
    user, older, newer = mine
    assert allocation_pick(user=user, pk=None) is None
    assert allocation_pick(user=user, pk="", first=True) == newer  # the user's newest first
    with_project = list(allocation_list_for_user(user=user).exclude(openstack_project_id=""))
    assert allocation_pick(user=user, pk=None, among=with_project, first=True) == older
    assert allocation_pick(user=user, pk=None, among=[], first=True) is None


def test_a_choice_is_one_of_those_offered_or_a_404(mine):
    user, older, newer = mine
    someone_elses = make_allocation(project_id="proj-2")
    assert allocation_pick(user=user, pk=str(older.pk)) == older
    assert allocation_pick(user=user, pk=newer.pk, among=allocation_list_for_user(user=user)) == newer
    for pk in (someone_elses.pk, "x", "1.5", -1, 0, MAX_PK + 1, 10**30):
        with pytest.raises(Http404):
            allocation_pick(user=user, pk=pk)
    with pytest.raises(Http404):  # a member's allocation that is not among those offered (no project yet)
        allocation_pick(user=user, pk=newer.pk, among=[older])


def test_a_page_reads_its_form_field_before_the_query_string(mine):
    user, older, newer = mine
    request = RequestFactory().post(f"/volumes/create/?project={newer.pk}", {"project": older.pk})
    request.user = user
    assert allocation_for_request(request) == older
    request = RequestFactory().get("/volumes/", {"project": newer.pk})
    request.user = user
    assert allocation_for_request(request) == newer
