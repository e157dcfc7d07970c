"""One answer to "does this request want a fragment?": an htmx request that is not boosted."""
import pytest
from django.test import RequestFactory
from django_htmx.middleware import HtmxDetails

from portal.htmx import is_partial, partial_template


@pytest.mark.parametrize("headers, partial", [
    ({}, False),
    ({"HX-Request": "true"}, True),
    ({"HX-Request": "true", "HX-Boosted": "true"}, False),  # a boosted link replaces the whole page
])
def test_a_partial_is_an_htmx_request_that_is_not_boosted(headers, partial):
    request = RequestFactory().get("/instances/", headers=headers)
    request.htmx = HtmxDetails(request)
    assert is_partial(request) is partial
    assert partial_template(request, "instances/list.html", "rows") == (
        "instances/list.html#rows" if partial else "instances/list.html")


def test_a_request_that_never_met_the_middleware_wants_the_page():
    assert not is_partial(RequestFactory().get("/"))
