"""The "New class" form: a template, the allocation that pays, dates, and the roster pasted or
uploaded as CSV (email[,name] per line)."""
from __future__ import annotations

import datetime
import zoneinfo

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from . import schedule as class_hours
from .models import NAME_VALIDATOR

MAX_CSV_BYTES = 256 * 1024


class CourseForm(forms.Form):
    template = forms.ChoiceField(help_text="What every seat boots.")
    name = forms.CharField(max_length=24, validators=[NAME_VALIDATOR], initial="bio101",
                           help_text="Short, lowercase: seats are named <name>-<username>.")
    title = forms.CharField(max_length=200, required=False, initial="")
    starts_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), label="First day")
    ends_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), label="Last day")
    schedule = forms.CharField(
        required=False, label="Class hours",
        widget=forms.TextInput(attrs={"placeholder": "Mon 09:00-10:30, Wed 09:00-10:30"}),
        help_text="Seats run during these hours and are shelved outside them (0 SU), back 15 minutes before each "
                  "session. Leave empty to keep seats running every day of the class.")
    timezone = forms.CharField(max_length=64, required=False, label="Time zone of the class hours")
    delete_after_days = forms.IntegerField(min_value=1, max_value=365, initial=14, required=False,
                                           label="Delete seats after",
                                           help_text="Days after the last day (seats are shelved the day after it).")
    roster = forms.CharField(widget=forms.Textarea(attrs={"rows": 8, "placeholder": "ada@uni.edu,Ada Lovelace"}),
                             required=False, help_text="One student per line: email[,name].")
    roster_file = forms.FileField(required=False, label="…or upload a CSV",
                                  widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv,text/plain"}))

    def __init__(self, *args, templates, **kwargs):
        super().__init__(*args, **kwargs)
        self.templates = list(templates)
        self.fields["template"].choices = [(str(t.pk), t.name) for t in self.templates]
        today = datetime.date.today()
        self.fields["starts_on"].initial = today
        self.fields["ends_on"].initial = today + datetime.timedelta(weeks=15)
        self.fields["timezone"].initial = settings.TIME_ZONE
        for field in self.fields.values():  # Bootstrap's look
            css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
            field.widget.attrs["class"] = f"{field.widget.attrs.get('class', '')} {css}".strip()

    def clean_schedule(self) -> list[dict]:
        return [s.as_json() for s in class_hours.schedule_parse(self.cleaned_data.get("schedule", ""))]

    def clean_delete_after_days(self) -> int:
        days = self.cleaned_data.get("delete_after_days")
        return 14 if days is None else days

    def clean_timezone(self) -> str:
        name = self.cleaned_data.get("timezone", "").strip() or settings.TIME_ZONE
        if name not in zoneinfo.available_timezones():
            raise ValidationError(f"“{name}” is not a time zone; write it like America/Chicago or Europe/Berlin.")
        return name

    def clean(self):
        data = super().clean()
        upload = data.get("roster_file")
        if upload:
            if upload.size > MAX_CSV_BYTES:
                self.add_error("roster_file", "The CSV is larger than 256 KB.")
            else:
                try:
                    data["roster"] = upload.read().decode("utf-8-sig")
                except UnicodeDecodeError:
                    self.add_error("roster_file", "The CSV is not UTF-8 text.")
        if not (data.get("roster") or "").strip() and not self.errors:
            self.add_error("roster", "Paste the roster or upload it as CSV.")
        return data

    @property
    def chosen_template(self):
        return next((t for t in self.templates if str(t.pk) == self.cleaned_data.get("template")), None)


class RosterAddForm(forms.Form):
    roster = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "placeholder": "grace@uni.edu,Grace Hopper",
                                                          "class": "form-control form-control-sm"}),
                             label="Add students", help_text="One per line: email[,name].")


class ExtendForm(forms.Form):
    ends_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date", "class": "form-control form-control-sm"}),
                              label="New last day")


class InstructorForm(forms.Form):
    email = forms.EmailField(label="Add an instructor or TA", help_text="The address of their portal account.")
