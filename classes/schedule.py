"""Class hours: a weekly schedule ("Mon 09:00-10:30, Wed 09:00-10:30") in the class's time zone.

Seats run during class hours and are shelved (0 SU) outside them; they are unshelved LEAD before
each session so they are up when it starts. Pure functions of the schedule and a time: the beat
task (classes.services.courses_schedule) and the cost preview both read them.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError

LEAD = dt.timedelta(minutes=15)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SESSION = re.compile(r"^(?P<day>[a-z]{3})[a-z]*\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})$")


@dataclass(frozen=True)
class Session:
    day: int  # 0 = Monday
    start: dt.time
    end: dt.time

    def __str__(self) -> str:
        return f"{DAYS[self.day].capitalize()} {self.start:%H:%M}-{self.end:%H:%M}"

    def as_json(self) -> dict:
        return {"day": self.day, "start": f"{self.start:%H:%M}", "end": f"{self.end:%H:%M}"}


def _time(text: str, where: str) -> dt.time:
    hours, minutes = (int(x) for x in text.split(":"))
    if hours > 23 or minutes > 59:
        raise ValidationError(f"{where}: {text} is not a time of day (00:00 to 23:59).")
    return dt.time(hours, minutes)


def schedule_parse(text: str) -> list[Session]:
    """Sessions separated by commas or new lines, each "<day> HH:MM-HH:MM"; "" is no schedule
    (seats run all day). Raises ValidationError naming each bad part."""
    sessions, errors = [], []
    for part in (p.strip() for p in re.split(r"[,;\n]", text or "")):
        if not part:
            continue
        match = _SESSION.match(part.lower())
        if not match or match["day"] not in DAYS:
            errors.append(f"“{part}”: write a day and hours, like “Mon 09:00-10:30”.")
            continue
        try:
            start, end = _time(match["start"], part), _time(match["end"], part)
        except ValidationError as exc:
            errors += exc.messages
            continue
        if end <= start:
            errors.append(f"“{part}”: the session must end after it starts (on the same day).")
            continue
        sessions.append(Session(DAYS.index(match["day"]), start, end))
    if errors:
        raise ValidationError(errors)
    return sorted(sessions, key=lambda s: (s.day, s.start))


def schedule_from_json(rows: list[dict]) -> list[Session]:
    return [Session(r["day"], dt.time.fromisoformat(r["start"]), dt.time.fromisoformat(r["end"])) for r in rows]


def schedule_text(rows: list[dict]) -> str:
    return ", ".join(str(s) for s in schedule_from_json(rows))


Window = tuple[dt.datetime, dt.datetime]


def windows(*, rows: list[dict], tz: str, first_day: dt.date, last_day: dt.date) -> list[Window]:
    """When seats run: each session on the class's days, from LEAD before its start to its end,
    as aware datetimes."""
    zone, sessions, out = ZoneInfo(tz), schedule_from_json(rows), []
    day = first_day
    while day <= last_day:
        for s in sessions:
            if s.day == day.weekday():
                start = dt.datetime.combine(day, s.start, tzinfo=zone)
                out.append((start - LEAD, dt.datetime.combine(day, s.end, tzinfo=zone)))
        day += dt.timedelta(days=1)
    return out


def phase_at(*, rows: list[dict], tz: str, first_day: dt.date, last_day: dt.date, now: dt.datetime) -> str:
    """"on" inside a window (seats should run), else "off"."""
    near = now.astimezone(ZoneInfo(tz)).date()
    for start, end in windows(rows=rows, tz=tz, first_day=max(first_day, near - dt.timedelta(days=1)),
                              last_day=min(last_day, near + dt.timedelta(days=1))):
        if start <= now < end:
            return "on"
    return "off"


def next_window(*, rows: list[dict], tz: str, first_day: dt.date, last_day: dt.date,
                now: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """The window running now or the next one to come, if any."""
    near = now.astimezone(ZoneInfo(tz)).date()
    return next((w for w in windows(rows=rows, tz=tz, first_day=max(first_day, near - dt.timedelta(days=1)),
                                    last_day=last_day) if w[1] > now), None)


def scheduled_hours(*, rows: list[dict], tz: str, first_day: dt.date, last_day: dt.date,
                    since: dt.datetime | None = None) -> Decimal:
    """Hours seats run between `since` (or the first day) and the end of the last day."""
    total = Decimal(0)
    for start, end in windows(rows=rows, tz=tz, first_day=first_day, last_day=last_day):
        if since is not None:
            start = max(start, since)
        if end > start:
            total += Decimal((end - start).total_seconds()) / Decimal(3600)
    return total
