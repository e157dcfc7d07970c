"""Forms behind the Django admin's review actions."""
from django import forms
from django.utils import timezone


class ApproveForm(forms.Form):
    awarded_sus = forms.DecimalField(label="Awarded SUs", min_value=1, max_digits=12, decimal_places=2)
    start_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    existing_project_id = forms.CharField(
        required=False, label="Link existing OpenStack project (id)",
        help_text="Leave empty to create a new project.")
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
    note = forms.CharField(required=False)


class CloseForm(forms.Form):
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
