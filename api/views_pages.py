"""The Tokens page (make, list, revoke personal API tokens) and the API docs page."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from allocations.selectors import allocation_list_for_user, allocation_pick

from . import tokens
from .models import ApiToken, TokenScope


class TokenForm(forms.Form):
    name = forms.CharField(max_length=64, help_text="What it is for, e.g. “laptop scripts”.")
    scope = forms.ChoiceField(choices=TokenScope.choices, initial=TokenScope.READ)
    allocation = forms.TypedChoiceField(coerce=int, required=False, empty_value=None,
                                        label="Limit to one allocation", help_text="Leave empty for all of yours.")
    expires_in_days = forms.IntegerField(min_value=1, max_value=365, initial=90, label="Expires in (days)")

    def __init__(self, *args, allocations=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["allocation"].choices = [("", "All my allocations")] + [(a.pk, a.title) for a in allocations]
        for field in self.fields.values():
            field.widget.attrs.setdefault("class", "form-select" if isinstance(field.widget, forms.Select)
                                          else "form-control")


def token_list(request):
    allocations = list(allocation_list_for_user(user=request.user))
    form = TokenForm(request.POST or None, allocations=allocations)
    created = raw = None
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        allocation = allocation_pick(user=request.user, pk=d["allocation"], among=allocations)  # None: all of them
        try:
            created, raw = tokens.token_create(user=request.user, name=d["name"], scope=d["scope"],
                                               expires_in_days=d["expires_in_days"], allocation=allocation)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            form = TokenForm(allocations=allocations)
    response = render(request, "api/tokens.html", {
        "form": form, "created": created, "raw": raw,
        "tokens": ApiToken.objects.filter(user=request.user).select_related("allocation")})
    if raw:
        response["Cache-Control"] = "no-store"
    return response


@require_POST
def token_revoke(request, pk: int):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    tokens.token_revoke(token=token)
    messages.success(request, f"Token {token.name} revoked; programs using it get 401 from now on.")
    return redirect("api:tokens")


def api_docs(request):
    return render(request, "api/docs.html")
