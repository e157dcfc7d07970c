import re
from datetime import timedelta

from django import forms
from django.core.validators import validate_email
from django.utils import timezone

from .models import AllocationKind, MembershipRole
from .services import single_line


class AllocationRequestForm(forms.Form):
    title = forms.CharField(max_length=200, help_text="The project's name, as reviewers and members will see it.")
    kind = forms.ChoiceField(choices=AllocationKind.choices)
    requested_sus = forms.DecimalField(label="Service units (SUs)", min_value=1, max_value=10_000_000,
                                       decimal_places=0, help_text="1 SU = 1 vCPU-hour; GPU and large-memory "
                                       "flavors cost 2 SUs per vCPU-hour.")
    storage_gb = forms.IntegerField(label="Storage (GB)", min_value=1, max_value=100_000, initial=1000)
    start_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}),
                                    help_text="What the SUs are for, and how you sized the request.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        today = timezone.localdate()
        self.fields["start_date"].initial = today
        self.fields["end_date"].initial = today + timedelta(days=365)

    def clean_title(self):
        title = single_line(self.cleaned_data["title"])
        if not title:
            raise forms.ValidationError("Give the allocation a title.")
        return title

    def clean(self):
        data = super().clean()
        start, end = data.get("start_date"), data.get("end_date")
        if start and end and end <= start:
            self.add_error("end_date", "The end date must be after the start date.")
        if start and start < timezone.localdate() - timedelta(days=1):
            self.add_error("start_date", "The start date cannot be in the past.")
        return data


MAX_INVITES = 50
_QUOTED_NAME = re.compile(r"\"[^\"\n]*\"")
_ANGLE_ADDRESS = re.compile(r"<([^<>\s]+)>")


def _addresses_in(text: str) -> list[str]:
    """The addresses in what people paste: separated by commas, semicolons, spaces or new lines;
    "Jane Doe <jane@example.org>", as mail programs copy them, counts as the address alone."""
    found = []
    for part in re.split(r"[,;\n]+", _QUOTED_NAME.sub(" ", text)):
        named = _ANGLE_ADDRESS.findall(part)
        found.extend(named if named else part.split())
    return found


class MemberAddForm(forms.Form):
    """One or several addresses at once; each is checked and every problem is named at the field."""

    email = forms.CharField(
        label="Add members by email", max_length=5000,
        error_messages={"required": "Enter at least one email address."},
        widget=forms.Textarea(attrs={"rows": 2, "autocomplete": "off", "spellcheck": "false"}),
        help_text="Several at once: separate them with commas, spaces or new lines. People with a verified "
                  "portal account join at once; anyone else gets an invitation by email.")
    role = forms.ChoiceField(choices=[(MembershipRole.MEMBER, "Member"), (MembershipRole.MANAGER, "Manager")])

    def clean_email(self):
        addresses, seen, problems = [], set(), []
        for address in _addresses_in(self.cleaned_data["email"]):
            if address.lower() in seen:
                continue
            try:
                validate_email(address)
            except forms.ValidationError:
                problems.append(f"“{address[:80]}” is not an email address.")
                continue
            seen.add(address.lower())
            addresses.append(address)
        if problems:
            more = [f"… and {len(problems) - 10} more."] if len(problems) > 10 else []
            raise forms.ValidationError(problems[:10] + more)
        if not addresses:
            raise forms.ValidationError("Enter at least one email address.")
        if len(addresses) > MAX_INVITES:
            raise forms.ValidationError(f"Add at most {MAX_INVITES} people at a time ({len(addresses)} given).")
        self.cleaned_data["emails"] = addresses
        return self.cleaned_data["email"]


class CredentialForm(forms.Form):
    allocation = forms.TypedChoiceField(coerce=int, label="Allocation (OpenStack project)", error_messages={
        "invalid_choice": "Choose one of your active allocations.", "required": "Choose an allocation."})
    name = forms.SlugField(max_length=64, help_text="Letters, digits, - and _ only, e.g. laptop-terraform.",
                           error_messages={"invalid": "Use letters, digits, - and _ only (no spaces), "
                                                      "e.g. laptop-terraform."})
    expires_in_days = forms.IntegerField(min_value=1, max_value=365, initial=90, label="Expires in (days)",
                                         error_messages={"min_value": "Between 1 and 365 days.",
                                                         "max_value": "Between 1 and 365 days.",
                                                         "invalid": "A whole number of days, 1 to 365."})

    def __init__(self, *args, allocations=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["allocation"].choices = [(a.pk, f"{a.title} ({a.openstack_project_name})") for a in allocations]
