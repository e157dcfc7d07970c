"""The parameters form built from Heat's template-validate answer: groups, labels, descriptions,
defaults, constraints as validation, hidden parameters as password fields."""
from __future__ import annotations

from portal.cloud.orchestration import ParameterGroup, TemplateValidation, _parameter
from stacks.forms import StackParametersForm
from stacks.seeds import TWO_SERVERS
from tests.stacks.conftest import validate_like_heat

# Heat's answer for a template, as its API gives it (what portal.cloud.orchestration reads)
ANSWER = TemplateValidation(
    description="demo",
    parameters=(
        _parameter("flavor", {"Type": "String", "Label": "Flavor", "Description": "Its size", "Default": "m3.small",
                              "AllowedValues": ["m3.tiny", "m3.small"], "NoEcho": "false"}),
        _parameter("size", {"Type": "Number", "Label": "size", "Default": 10, "MinValue": 1, "MaxValue": 500,
                            "ConstraintDescription": "A volume of 1 to 500 GB.", "NoEcho": "false"}),
        _parameter("db_password", {"Type": "String", "Label": "Database password", "NoEcho": "true",
                                   "MinLength": 8, "AllowedPattern": "[A-Za-z0-9]+",
                                   "ConstraintDescription": "Letters and digits only."}),
        _parameter("note", {"Type": "String", "Label": "note", "Default": "", "NoEcho": "false"}),
    ),
    groups=(ParameterGroup("Server", "The machine.", ("flavor", "size")),
            ParameterGroup("Secrets", "", ("db_password",))),
)


def form(**data) -> StackParametersForm:
    base = {"step": "parameters", "template": "x", "stack_name": "demo", "param-flavor": "m3.small",
            "param-size": "10", "param-db_password": "s3cretpass"}
    return StackParametersForm({**base, **data}, validation=ANSWER)


def test_groups_become_fieldsets_in_the_templates_order_with_the_rest_last():
    sets = StackParametersForm(validation=ANSWER).fieldsets()
    assert [(s.label, s.description) for s in sets] == [("Server", "The machine."), ("Secrets", ""),
                                                        ("Other parameters", "")]
    assert [[f.name for f in s.fields] for s in sets] == [["param-flavor", "param-size"], ["param-db_password"],
                                                          ["param-note"]]


def test_labels_descriptions_and_defaults_are_heats():
    f = StackParametersForm(validation=ANSWER)
    flavor = f["param-flavor"]
    assert flavor.label == "Flavor" and flavor.help_text == "Its size" and flavor.initial == "m3.small"
    assert flavor.widget_type == "select" and [v for v, _ in flavor.field.choices] == ["m3.tiny", "m3.small"]
    assert str(f["param-size"].initial) == "10"
    # no default: required; a default: may be left to Heat
    assert f.fields["param-db_password"].required and not f.fields["param-note"].required


def test_hidden_parameters_are_password_fields_that_never_echo_their_value():
    f = form()
    assert f["param-db_password"].widget_type == "password"
    assert "s3cretpass" not in str(f["param-db_password"])
    assert f.is_valid(), f.errors
    assert f.hidden_names() == {"db_password"}
    assert f.heat_values() == {"flavor": "m3.small", "size": "10", "db_password": "s3cretpass"}  # note: left to Heat


def test_constraints_refuse_values_in_the_constraints_own_words():
    f = form(**{"param-flavor": "m3.2xl", "param-size": "501", "param-db_password": "short!"})
    assert not f.is_valid()
    assert f.errors["param-flavor"] == ['"m3.2xl" is not an allowed value ["m3.tiny", "m3.small"]']
    assert f.errors["param-size"] == ["A volume of 1 to 500 GB."]
    assert "Letters and digits only." in f.errors["param-db_password"]
    assert len(f.errors["param-db_password"]) == 2  # too short, and a character outside the pattern


def test_the_library_template_reads_as_its_form():
    f = StackParametersForm(validation=validate_like_heat(TWO_SERVERS))
    assert [s.label for s in f.fieldsets()] == ["Servers", "Network", "Secrets"]
    assert f["param-server_count"].label == "Servers" and f.fields["param-server_count"].required is False
    assert f["param-db_password"].widget_type == "password"
    bad = StackParametersForm({"step": "parameters", "template": "x", "stack_name": "two", "param-flavor": "m3.tiny",
                               "param-cidr": "192.168.1.0/24", "param-db_password": "abcdefgh12"},
                              validation=validate_like_heat(TWO_SERVERS))
    assert not bad.is_valid()
    assert bad.errors["param-cidr"] == ["A /24 range within 10.0.0.0/8, such as 10.50.0.0/24."]
