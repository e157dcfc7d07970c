from datetime import timedelta

from allauth.account.models import EmailAddress
from django import forms
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


class MemberAddForm(forms.Form):
    email = forms.EmailField(label="Add a member by email",
                             help_text="The person must have signed up and verified this address.")
    role = forms.ChoiceField(choices=[(MembershipRole.MEMBER, "Member"), (MembershipRole.MANAGER, "Manager")])

    def clean_email(self):
        """Only an address its owner has verified names them: anyone can sign up with any address.

        Unknown and unverified addresses get the same answer, so the form does not tell who has an
        account.
        """
        email = self.cleaned_data["email"]
        addresses = EmailAddress.objects.filter(email__iexact=email, verified=True).select_related("user")
        users = {address.user for address in addresses}
        if len(users) != 1:
            raise forms.ValidationError(f"No portal account has verified {email}. Ask them to sign up "
                                        "(or to confirm this address) first.")
        self.cleaned_data["user"] = users.pop()
        return email


class CredentialForm(forms.Form):
    allocation = forms.TypedChoiceField(coerce=int, label="Allocation (OpenStack project)")
    name = forms.SlugField(max_length=64, help_text="Letters, numbers, - and _ only, e.g. laptop-terraform.")
    expires_in_days = forms.IntegerField(min_value=1, max_value=365, initial=90, label="Expires in (days)")

    def __init__(self, *args, allocations=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["allocation"].choices = [(a.pk, f"{a.title} ({a.openstack_project_name})") for a in allocations]
