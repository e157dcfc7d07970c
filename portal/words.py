"""Plain words for values shown many times a page, cheaper than the template filters that say the
same (Django's `timesince` goes through the translation machinery on every call)."""
from __future__ import annotations

from datetime import datetime

_UNITS = (("year", 365 * 86400), ("month", 30 * 86400), ("week", 7 * 86400), ("day", 86400), ("hour", 3600),
          ("minute", 60))


def _count(n: int, unit: str) -> str:
    return f"{n}\xa0{unit}{'' if n == 1 else 's'}"


def age_words(since: datetime | None, now: datetime) -> str:
    """How long ago `since` was, in the two largest adjacent units, as `timesince` says it
    ("3\xa0days, 2\xa0hours", "5\xa0minutes", "0\xa0minutes" under a minute or in the future);
    "" when there is no time."""
    if since is None:
        return ""
    seconds = int((now - since).total_seconds())
    for index, (unit, size) in enumerate(_UNITS):
        if seconds >= size:
            words = _count(seconds // size, unit)
            if index + 1 < len(_UNITS):
                smaller, smaller_size = _UNITS[index + 1]
                rest = seconds % size // smaller_size
                if rest:
                    words += ", " + _count(rest, smaller)
            return words
    return _count(0, "minute")
