"""A seat's cloud-init user data: the student's Linux user (their SSH key and/or a generated
password), the template's boot script with the student's placeholders filled in, and the
metadata service fenced to root (the user data holds the password's hash)."""
from __future__ import annotations

import re
import secrets
import warnings

import yaml
from django.template import Context, Engine

from clusters.rendering import METADATA_FENCE

from .models import AccessMethod, Course, Seat

USERNAME = re.compile(r"[^a-z0-9]")
# The template engine the boot scripts are rendered with: no autoescape (a shell script, not HTML),
# and nothing but variables and filters from Django's built-ins.
ENGINE = Engine(autoescape=False)
# libyaml's emitter where PyYAML was built with it (a class of 50 seats renders 50 of these at once).
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def username_for(email: str, taken: set[str]) -> str:
    """A Linux user name from the address's local part ("Ada.Lovelace+cs@x" -> "adalovelace"),
    unique among `taken` (a number is added)."""
    base = USERNAME.sub("", email.split("@", 1)[0].split("+", 1)[0].lower())[:24] or "student"
    if base[0].isdigit():
        base = f"u{base}"[:24]
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}{n}"
    return name


def password_new() -> str:
    return secrets.token_urlsafe(9)


with warnings.catch_warnings():  # deprecated in 3.11, gone in 3.13: then cloud-init gets the plain text
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import crypt
    except ImportError:  # pragma: no cover - Python 3.13+
        crypt = None


def password_fields(password: str) -> dict:
    """cloud-init's user fields for the password: a SHA-512 crypt hash where Python can make one."""
    if crypt is None:  # pragma: no cover
        return {"plain_text_passwd": password}
    return {"passwd": crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))}


def boot_script(course: Course, seat: Seat) -> str:
    student = {"username": seat.username, "name": seat.name or seat.username, "email": seat.email}
    return ENGINE.from_string(course.template.boot_script).render(Context({"student": student, "class": course}))


def seat_user_data(course: Course, seat: Seat, *, ssh_keys: list[str], password: str = "") -> str:
    """The cloud-config of one seat. `ssh_keys`: the student's public keys (may be empty until they
    upload one); `password`: the generated one, hashed here (the plain text is never in user data)."""
    access = course.template.access
    user = {"name": seat.username, "gecos": seat.name or seat.username, "shell": "/bin/bash",
            "groups": ["users"], "lock_passwd": True}
    if access in (AccessMethod.SSH_KEY, AccessMethod.BOTH) and ssh_keys:
        user["ssh_authorized_keys"] = list(ssh_keys)
    if access in (AccessMethod.PASSWORD, AccessMethod.BOTH) and password:
        user.update(lock_passwd=False, **password_fields(password))
    data: dict = {"bootcmd": [["sh", "-c", METADATA_FENCE]], "users": ["default", user]}
    if not user["lock_passwd"]:
        data["ssh_pwauth"] = True
    script = boot_script(course, seat).strip()
    if script:
        data["write_files"] = [{"path": "/usr/local/sbin/class-setup", "permissions": "0755",
                                "content": script + "\n"}]
        data["runcmd"] = [["/usr/local/sbin/class-setup"]]
    return "#cloud-config\n" + yaml.dump(data, Dumper=DUMPER, sort_keys=False, width=1000, allow_unicode=False)
