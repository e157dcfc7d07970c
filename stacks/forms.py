"""The New stack forms: where the template comes from, then its parameters as Heat describes them.

The parameters form is built from Heat's template-validate answer: its groups become fieldsets,
labels and descriptions the fields' own, defaults their initial values, constraints the fields'
validation (allowed values: a choice; range, length, pattern: validators), hidden parameters
password fields. Heat checks the values again (and its custom constraints) before anything is made.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinLengthValidator, MinValueValidator

from portal.cloud.orchestration import TemplateParameter, TemplateValidation

from .models import NAME_VALIDATOR, StackTemplate
from .templating import MAX_TEMPLATE_BYTES

PREFIX = "param-"


class TemplateSourceForm(forms.Form):
    """Step 1: a template of the library, pasted YAML, or an uploaded file."""

    SOURCES = [("library", "From the library"), ("paste", "Paste YAML"), ("upload", "Upload a file")]
    source = forms.ChoiceField(choices=SOURCES, initial="library", widget=forms.RadioSelect)
    library = forms.ModelChoiceField(queryset=StackTemplate.objects.all(), required=False, empty_label=None,
                                     label="Template")
    pasted = forms.CharField(required=False, label="Template (YAML)",
                             widget=forms.Textarea(attrs={"rows": 14, "class": "font-monospace",
                                                          "spellcheck": "false"}))
    uploaded = forms.FileField(required=False, label="Template file (.yaml)")

    def clean(self):
        data = super().clean()
        source = data.get("source")
        if source == "library" and not data.get("library"):
            self.add_error("library", "Choose a template of the library.")
        elif source == "paste" and not (data.get("pasted") or "").strip():
            self.add_error("pasted", "Paste a Heat template.")
        elif source == "upload":
            upload = data.get("uploaded")
            if upload is None:
                self.add_error("uploaded", "Choose a template file.")
            elif upload.size > MAX_TEMPLATE_BYTES:
                self.add_error("uploaded", f"The file is larger than {MAX_TEMPLATE_BYTES // 1024} KB.")
        return data

    def template(self) -> tuple[str, str]:
        """(the template's text, its library name or "")."""
        data = self.cleaned_data
        if data["source"] == "library":
            return data["library"].template, data["library"].name
        if data["source"] == "paste":
            return data["pasted"], ""
        try:
            return data["uploaded"].read().decode("utf-8"), ""
        except UnicodeDecodeError as exc:
            raise ValidationError({"uploaded": "The file is not UTF-8 text."}) from exc


def _number(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _number_field(p: TemplateParameter, common: dict) -> forms.Field:
    words = p.constraint_description
    validators = []
    if p.min_value is not None:
        validators.append(MinValueValidator(_number(p.min_value), message=words or None))
    if p.max_value is not None:
        validators.append(MaxValueValidator(_number(p.max_value), message=words or None))
    initial = _number(p.default) if p.has_default and p.default not in ("", None) else None
    return forms.DecimalField(validators=validators, initial=initial, **common)


def _text_field(p: TemplateParameter, common: dict) -> forms.Field:
    words = p.constraint_description
    validators = []
    if p.min_length is not None:
        validators.append(MinLengthValidator(p.min_length, message=words or None))
    if p.max_length is not None:
        validators.append(MaxLengthValidator(p.max_length, message=words or None))
    if p.allowed_pattern:
        pattern = re.compile(p.allowed_pattern)

        def matches(value, pattern=pattern):  # Heat: the pattern must match the whole value
            if not pattern.fullmatch(value):
                raise ValidationError(words or f'"{value}" does not match pattern "{pattern.pattern}"')
        validators.append(matches)
    if p.hidden:
        widget = forms.PasswordInput(attrs={"autocomplete": "new-password"})
    elif p.type == "Json":
        widget = forms.Textarea(attrs={"rows": 4, "class": "font-monospace"})
    else:
        widget = forms.TextInput
    initial = None if p.hidden or not p.has_default else (
        json.dumps(p.default) if p.type == "Json" and not isinstance(p.default, str) else p.default)
    return forms.CharField(validators=validators, widget=widget, initial=initial, strip=False, **common)


def parameter_field(p: TemplateParameter) -> forms.Field:
    """The form field for one of Heat's parameters."""
    common = {"label": p.label, "help_text": p.description, "required": not p.has_default}
    if p.allowed_values:
        values = [str(v) for v in p.allowed_values]
        choices = ([] if p.has_default else [("", "—")]) + [(v, v) for v in values]
        field = forms.ChoiceField(choices=choices, initial=str(p.default) if p.has_default else "",
                                  **{**common, "required": True})
        field.error_messages["invalid_choice"] = p.constraint_description or (
            f'"%(value)s" is not an allowed value {json.dumps(values)}')
        return field
    if p.type == "Number":
        return _number_field(p, common)
    if p.type == "Boolean":
        initial = str(p.default).lower() in ("true", "1", "yes", "on", "t", "y") if p.has_default else False
        return forms.ChoiceField(choices=[("true", "Yes"), ("false", "No")], initial="true" if initial else "false",
                                 **{**common, "required": True})
    return _text_field(p, common)


@dataclass(frozen=True)
class Fieldset:
    label: str
    description: str
    fields: list


class StackParametersForm(forms.Form):
    """Step 2: the stack's name and the template's parameters. The template travels with the form."""

    step = forms.CharField(widget=forms.HiddenInput, initial="parameters")
    template = forms.CharField(widget=forms.HiddenInput, strip=False)
    template_name = forms.CharField(widget=forms.HiddenInput, required=False)
    stack_name = forms.CharField(label="Stack name", max_length=64, validators=[NAME_VALIDATOR],
                                 help_text="Unique in the project; Heat names the stack's resources after it.")

    def __init__(self, *args, validation: TemplateValidation, **kwargs):
        super().__init__(*args, **kwargs)
        self.validation = validation
        self.parameters = {p.name: p for p in validation.parameters}
        for p in validation.parameters:
            self.fields[PREFIX + p.name] = parameter_field(p)

    def fieldsets(self) -> list[Fieldset]:
        """The template's parameter groups in its order, then the parameters no group names."""
        grouped, sets = set(), []
        for group in self.validation.groups:
            names = [n for n in group.parameters if n in self.parameters and n not in grouped]
            grouped.update(names)
            if names:
                sets.append(Fieldset(group.label or "Parameters", group.description,
                                     [self[PREFIX + n] for n in names]))
        rest = [self[PREFIX + p.name] for p in self.validation.parameters if p.name not in grouped]
        if rest:
            sets.append(Fieldset("Parameters" if not sets else "Other parameters", "", rest))
        return sets

    def heat_values(self) -> dict[str, str]:
        """Parameter name -> the value for Heat; a blank one that has a default is left to Heat."""
        values = {}
        for name, p in self.parameters.items():
            value = self.cleaned_data.get(PREFIX + name)
            if value in (None, "") and p.has_default:
                continue
            values[name] = _heat_text(value)
        return values

    def hidden_names(self) -> set[str]:
        return {name for name, p in self.parameters.items() if p.hidden}

    def values_for_preview(self) -> dict:
        """What the cost preview resolves `get_param` with: the defaults, overridden by what the form holds."""
        values = {p.name: p.default for p in self.validation.parameters if p.has_default}
        for name in self.parameters:
            raw = self.data.get(PREFIX + name) if self.is_bound else None
            if raw not in (None, ""):
                values[name] = raw
        return values

    def add_heat_error(self, parameter: str, words: str) -> None:
        """Heat's refusal of a parameter's value, on that parameter's field."""
        field = PREFIX + parameter
        self.add_error(field if field in self.fields else None, words)


def _heat_text(value) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)
