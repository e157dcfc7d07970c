"""Forms behind the Django admin's review actions, and the Allocation change form."""
import secrets

from django import forms
from django.utils import timezone

from .models import Allocation
from .services import single_line


class ApproveForm(forms.Form):
    awarded_sus = forms.DecimalField(label="Awarded SUs", min_value=1, max_digits=12, decimal_places=2)
    start_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    existing_project_id = forms.CharField(
        required=False, max_length=64, label="Link existing OpenStack project (id)",
        help_text="Leave empty to create a new project. A project can belong to one allocation only.")
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                           help_text="Sent to the PI with the approval.")

    def clean(self):
        data = super().clean()
        if data.get("start_date") and data.get("end_date") and data["end_date"] <= data["start_date"]:
            raise forms.ValidationError("The end date must be after the start date.")
        return data


class RejectForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), help_text="Sent to the PI.")


class ExtendForm(forms.Form):
    end_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))

    def clean_end_date(self):
        if self.cleaned_data["end_date"] <= timezone.localdate():
            raise forms.ValidationError("Pick a date in the future.")
        return self.cleaned_data["end_date"]


class AddSUsForm(forms.Form):
    sus = forms.DecimalField(label="SUs to add", min_value=1, max_digits=12, decimal_places=2)
    note = forms.CharField(required=False, max_length=200)
    # Made when the form is shown and sent back with it: the same form sent twice awards once.
    key = forms.CharField(label="", widget=forms.HiddenInput, min_length=16, max_length=48,
                          error_messages={"required": "This form has expired; open Add SUs again."})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["key"].initial = secrets.token_urlsafe(24)

    def clean_note(self):
        return single_line(self.cleaned_data["note"])


class CloseForm(forms.Form):
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


class AllocationAdminForm(forms.ModelForm):
    """The change form: the title stays one line, as when the PI typed it in the portal."""

    class Meta:
        model = Allocation
        fields = "__all__"  # noqa: DJ007 - the admin's fieldsets choose the fields; this form only cleans the title

    def clean_title(self):
        title = single_line(self.cleaned_data["title"])
        if not title:
            raise forms.ValidationError("Give the allocation a title.")
        return title
