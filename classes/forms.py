"""The "New class" form: a template, the allocation that pays, dates, and the roster pasted or
uploaded as CSV (email[,name] per line)."""
from __future__ import annotations

import datetime

from django import forms

from .models import NAME_VALIDATOR

MAX_CSV_BYTES = 256 * 1024


class CourseForm(forms.Form):
    template = forms.ChoiceField(help_text="What every seat boots.")
    name = forms.CharField(max_length=24, validators=[NAME_VALIDATOR], initial="bio101",
                           help_text="Short, lowercase: seats are named <name>-<username>.")
    title = forms.CharField(max_length=200, required=False, initial="")
    starts_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), label="First day")
    ends_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), label="Last day")
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
