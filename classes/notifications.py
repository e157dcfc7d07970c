"""Mails for classes: a student's invitation, and the reminders before seats are shelved at the
end of a class and before they are deleted."""
from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.core.mail import send_mass_mail
from django.urls import reverse

from .models import Course, Seat


def _url(path: str, base_url: str = "") -> str:
    return (base_url or settings.PORTAL_PUBLIC_URL).rstrip("/") + path


def _subject(text: str) -> str:
    return " ".join(f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{text}".split())[:200]


def machines_url(base_url: str = "") -> str:
    return _url(reverse("classes:mine"), base_url)


def invitation_signup_url(seat: Seat, base_url: str = "") -> str:
    query = urlencode({"email": seat.email, "next": reverse("classes:mine")})
    return _url(f"{reverse('account_signup')}?{query}", base_url)


def invitations_send(course: Course, seats: list[Seat], base_url: str = "") -> int:
    """One mail per student: what the class is, and how to reach their machine (sign up or in with
    this address; the seat is theirs once the address is confirmed). `base_url`: the portal's
    address as the educator reached it (PORTAL_PUBLIC_URL otherwise)."""
    teacher = course.owner.email
    messages = [(
        _subject(f"Your machine for {course}"),
        f"{teacher} has set up a cloud machine for you in the class “{course}” "
        f"({course.starts_on:%b %-d} to {course.ends_on:%b %-d, %Y}).\n\n"
        f"New here? Create your account with this address ({seat.email}):\n{invitation_signup_url(seat, base_url)}\n\n"
        f"Already have an account with this address? Your machine is under “My class machines”:\n"
        f"{machines_url(base_url)}\n\n"
        "There you see its state, the exact ssh command to connect, and buttons to start, stop and reboot it.",
        None, [seat.email]) for seat in seats]
    return send_mass_mail(messages, fail_silently=False)


def reminder_send(course: Course, *, what: str, on, days: int) -> int:
    """`what`: "shelve" (the class's last day is over) or "delete" (the seats go for good)."""
    students = list(course.seats.exclude(state="removed").values_list("email", flat=True))
    teachers = {course.owner.email, *course.instructors.values_list("email", flat=True)}
    when = "tomorrow" if days <= 1 else f"in {days} days"
    if what == "shelve":
        subject = f"{course}: class machines shelved {when}"
        student_text = (f"The class “{course}” ends on {course.ends_on:%A %b %-d}. On {on:%A %b %-d} your class "
                        "machine will be shelved (stopped, its disk kept), and deleted later. Copy off anything you "
                        f"want to keep.\n\n{machines_url()}")
        teacher_text = (f"The class “{course}” ends on {course.ends_on:%A %b %-d}: its {len(students)} seats will be "
                        f"shelved on {on:%A %b %-d}, and deleted {course.delete_after_days} days later. To keep "
                        f"them running, extend the class:\n{_url(reverse('classes:detail', args=[course.pk]))}")
    else:
        subject = f"{course}: class machines deleted {when}"
        student_text = (f"Your machine from the class “{course}” will be deleted on {on:%A %b %-d}, with "
                        f"everything on it.\n\n{machines_url()}")
        teacher_text = (f"The {len(students)} seats of “{course}” will be deleted on {on:%A %b %-d}. To keep them, "
                        f"extend the class:\n{_url(reverse('classes:detail', args=[course.pk]))}")
    messages = [(_subject(subject), student_text, None, [email]) for email in students]
    messages += [(_subject(subject), teacher_text, None, [email]) for email in sorted(teachers) if email]
    return send_mass_mail(messages, fail_silently=False)
