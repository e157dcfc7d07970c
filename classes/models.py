"""Classes (issue 11): an educator's template, a class made from it in an allocation, and one seat
(a VM) per student on its roster.

A seat's server is made in the class allocation's project with the class owner's Keystone
identity (through the instances' launch path: the same preflight, charging and idempotency); the
student gets no role in the project and reaches only their own seat, through the portal.
"""
from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

NAME_VALIDATOR = RegexValidator(r"^[a-z][a-z0-9-]{0,23}$",
                                "Lowercase letters, digits and dashes, starting with a letter (up to 24).")


class AccessMethod(models.TextChoices):
    SSH_KEY = "ssh_key", "SSH key"
    PASSWORD = "password", "Generated password"
    BOTH = "both", "SSH key and generated password"


class ClassTemplate(models.Model):
    """What every seat of a class boots: image, flavor, a boot script with the student's
    placeholders ({{ student.username }}, {{ student.name }}, {{ student.email }}), ports to open."""

    name = models.CharField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    image_name = models.CharField(max_length=255, help_text="A Glance image the class's project can boot.")
    flavor_name = models.CharField(max_length=64, default="m3.small")
    boot_script = models.TextField(blank=True, help_text="A shell script run as root at first boot; "
                                                         "{{ student.username }} and friends are filled in.")
    volume_gb = models.PositiveIntegerField(null=True, blank=True, help_text="A data volume per student.")
    ports = models.JSONField(default=list, blank=True, help_text="TCP ports to open besides SSH (22).")
    access = models.CharField(max_length=16, choices=AccessMethod.choices, default=AccessMethod.BOTH)
    builtin = models.BooleanField(default=False, help_text="Seeded with the portal; every educator may use it.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CourseState(models.TextChoices):
    DRAFT = "draft", "Not launched"
    RUNNING = "running", "Running"
    ENDED = "ended", "Ended (seats shelved)"
    DELETED = "deleted", "Deleted"


class Course(models.Model):
    """A class (the word is Python's): its allocation pays, its owner's identity makes the seats."""

    allocation = models.ForeignKey("allocations.Allocation", on_delete=models.PROTECT, related_name="courses")
    template = models.ForeignKey(ClassTemplate, on_delete=models.PROTECT, related_name="courses")
    name = models.CharField(max_length=24, validators=[NAME_VALIDATOR],
                            help_text="Seats are named <name>-<student's username>.")
    title = models.CharField(max_length=200, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="courses_owned")
    instructors = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="courses_taught",
                                         help_text="Instructors and TAs: they act on every seat.")
    starts_on = models.DateField()
    ends_on = models.DateField()
    delete_after_days = models.PositiveSmallIntegerField(default=14, validators=[MaxValueValidator(365)])
    # Class hours (classes.schedule): [{"day": 0, "start": "09:00", "end": "10:30"}]; empty = all day.
    schedule = models.JSONField(default=list, blank=True)
    timezone = models.CharField(max_length=64, default="UTC", help_text="The time zone of the class hours.")
    # What the schedule last made of the seats ("on" or "off"); the beat acts when the phase changes.
    schedule_phase = models.CharField(max_length=8, blank=True)
    # Reminder mails already sent ("shelve-3", "shelve-1", "delete-3", "delete-1"), cleared on extend.
    reminders_sent = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=16, choices=CourseState.choices, default=CourseState.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "class"
        verbose_name_plural = "classes"
        constraints = [
            models.UniqueConstraint(fields=["allocation", "name"], name="one_class_per_name_in_allocation"),
            models.CheckConstraint(condition=models.Q(ends_on__gte=models.F("starts_on")),
                                   name="class_ends_after_start"),
        ]

    def __str__(self) -> str:
        return self.title or self.name


class SeatRole(models.TextChoices):
    STUDENT = "student", "Student"
    INSTRUCTOR = "instructor", "Instructor"


class SeatState(models.TextChoices):
    PENDING = "pending", "Not launched"
    LAUNCHING = "launching", "Launching"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    REMOVED = "removed", "Removed"


class Seat(models.Model):
    """One line of the roster and its VM. `user` binds when the student signs up or in with `email`."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="seats")
    email = models.EmailField()
    name = models.CharField(max_length=200, blank=True)
    username = models.CharField(max_length=32, help_text="The Linux user made on the seat.")
    role = models.CharField(max_length=16, choices=SeatRole.choices, default=SeatRole.STUDENT)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="seats")
    state = models.CharField(max_length=16, choices=SeatState.choices, default=SeatState.PENDING)
    launch = models.ForeignKey("instances.LaunchRequest", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    server_id = models.CharField(max_length=64, blank=True)
    # The generated password, encrypted (portal.crypto); shown to the student until they confirm.
    encrypted_password = models.TextField(blank=True)
    error = models.TextField(blank=True)
    line = models.PositiveIntegerField(default=0, validators=[MinValueValidator(0)],
                                       help_text="The roster line it came from.")
    invited_at = models.DateTimeField(null=True, blank=True)
    # The student's last visit to their machine's page or action on it, through the portal.
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["course", "username"]
        constraints = [
            models.UniqueConstraint(fields=["course", "email"], name="one_seat_per_email"),
            models.UniqueConstraint(fields=["course", "username"], name="one_seat_per_username"),
        ]

    def __str__(self) -> str:
        return f"{self.course.name}/{self.username}"

    @property
    def server_ids(self) -> list[str]:
        """The seat's server: recorded once ready, else what its launch made (select_related("launch"))."""
        if self.server_id:
            return [self.server_id]
        return list(self.launch.server_ids) if self.launch_id and self.launch else []

    @property
    def server_name(self) -> str:
        return f"{self.course.name}-{self.username}"[:63]
