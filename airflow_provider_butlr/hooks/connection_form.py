"""The connection form for Airflow 3.0/3.1 (3.2+ reads the declarative ``conn-fields`` of the provider
info instead); both come from the same facts in the package's ``__init__``.

Airflow 3.0/3.1 look for ``get_ui_field_behaviour`` and ``get_connection_form_widgets`` in the hook
class's own ``__dict__``, not in its bases: ``ButlrHook`` defines both, from these functions.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_butlr import CONN_FIELDS, DEFAULT_AUDIENCE, DEFAULT_MAX_RETRIES, UI_FIELD_BEHAVIOUR


def ui_field_behaviour() -> dict[str, Any]:
    """Relabels, placeholders and hidden fields of the connection form."""
    return {
        "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }


def connection_form_widgets() -> dict[str, Any]:
    """Extra fields for the legacy form; WTForms is imported here only, never at module level."""
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import IntegerField, StringField
    from wtforms.validators import NumberRange, Optional, any_of

    def label(name: str) -> Any:
        return lazy_gettext(CONN_FIELDS[name]["label"])

    def description(name: str) -> str:
        return str(CONN_FIELDS[name]["description"])

    def number_range(name: str) -> NumberRange:
        schema = CONN_FIELDS[name]["schema"]
        return NumberRange(min=schema["minimum"], max=schema["maximum"])

    return {
        "audience": StringField(
            label("audience"),
            widget=BS3TextFieldWidget(),
            default=DEFAULT_AUDIENCE,
            description=description("audience"),
        ),
        "auth_type": StringField(
            label("auth_type"),
            widget=BS3TextFieldWidget(),
            default="client_credentials",
            # any_of (not AnyOf): Airflow 3.0-3.2 turn exactly this validator into a dropdown.
            validators=[any_of(list(CONN_FIELDS["auth_type"]["schema"]["enum"]))],
            description=description("auth_type"),
        ),
        "timeout": IntegerField(
            label("timeout"),
            widget=BS3TextFieldWidget(),
            default=CONN_FIELDS["timeout"]["schema"]["default"],
            validators=[Optional(), number_range("timeout")],
            description=description("timeout"),
        ),
        "max_retries": IntegerField(
            label("max_retries"),
            widget=BS3TextFieldWidget(),
            default=DEFAULT_MAX_RETRIES,
            validators=[Optional(), number_range("max_retries")],
            description=description("max_retries"),
        ),
        "max_requests_per_minute": IntegerField(
            label("max_requests_per_minute"),
            widget=BS3TextFieldWidget(),
            default=None,
            validators=[Optional(), number_range("max_requests_per_minute")],
            description=description("max_requests_per_minute"),
        ),
        "max_rate_limit_wait": IntegerField(
            label("max_rate_limit_wait"),
            widget=BS3TextFieldWidget(),
            default=CONN_FIELDS["max_rate_limit_wait"]["schema"]["default"],
            validators=[Optional(), number_range("max_rate_limit_wait")],
            description=description("max_rate_limit_wait"),
        ),
        "redis_conn_id": StringField(
            label("redis_conn_id"),
            widget=BS3TextFieldWidget(),
            default=None,
            validators=[Optional()],
            description=description("redis_conn_id"),
        ),
    }
