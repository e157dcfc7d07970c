from datetime import UTC, datetime, timedelta

import pytest
from django.utils.timesince import timesince

from portal.words import age_words

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("ago", [timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=59),
                                 timedelta(hours=1), timedelta(hours=2, minutes=5), timedelta(days=1),
                                 timedelta(days=3, hours=2), timedelta(days=9), timedelta(days=15, hours=3)])
def test_an_age_reads_as_django_timesince_says_it(ago):
    assert age_words(NOW - ago, NOW) == timesince(NOW - ago, NOW)


def test_no_time_and_a_time_ahead():
    assert age_words(None, NOW) == ""
    assert age_words(NOW + timedelta(minutes=5), NOW) == "0\xa0minutes"
