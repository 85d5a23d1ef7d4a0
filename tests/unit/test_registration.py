"""Registration with Airflow's own machinery, on whichever Airflow 3.x minor is installed.

Proves: discovery through the entry point, the provider info against Airflow's schemas, the
connection form the UI renders (``HookMetaService``, the source of ``GET /ui/connections/hook_meta``)
without WTForms, parity of the legacy hook classmethods with the declarative provider info, and a
cheap ``get_provider_info``.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import subprocess
import sys
import types
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any

import jsonschema
import pytest

from airflow_provider_butlr import (
    CONN_FIELDS,
    DEFAULT_BASE_URL,
    HOOK_CLASS,
    UI_FIELD_BEHAVIOUR,
    __version__,
    get_provider_info,
)
from tests.support.airflow_versions import (
    AIRFLOW_V_3_1_PLUS,
    AIRFLOW_V_3_2_PLUS,
    AIRFLOW_V_3_3_PLUS,
    AIRFLOW_VERSION,
)

DISTRIBUTION = "airflow-provider-butlr"
FORM_LIBRARIES = ("wtforms", "flask_appbuilder", "flask_babel")
HEAVY_MODULES = ("requests", "tenacity", "airflow", "airflow_provider_butlr.hooks", "wtforms")
JSON_TYPE_TO_WTFORMS = {"string": "StringField", "integer": "IntegerField", "boolean": "BooleanField"}


def airflow_schema(name: str) -> dict[str, Any]:
    """A JSON schema shipped inside the installed Airflow core distribution."""
    return json.loads((importlib.resources.files("airflow") / name).read_text())


def butlr_connection_type() -> dict[str, Any]:
    (entry,) = get_provider_info()["connection-types"]
    return entry


def run_python(code: str) -> Any:
    """Run ``code`` in a fresh interpreter (clean ``sys.modules``); it prints one JSON document."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- discovery -----------------------------------------------------------------------------------


def test_entry_point_belongs_to_the_distribution_and_returns_the_provider_info() -> None:
    (entry,) = [ep for ep in entry_points(group="apache_airflow_provider") if ep.dist.name == DISTRIBUTION]
    assert entry.value == "airflow_provider_butlr:get_provider_info"
    info = entry.load()()
    assert info["package-name"] == DISTRIBUTION == entry.dist.name


def runtime_hooks() -> Any:
    """The hook registry: the Task SDK's from 3.2 on (core's ``ProvidersManager.hooks`` is deprecated)."""
    if AIRFLOW_V_3_2_PLUS:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        return ProvidersManagerTaskRuntime().hooks
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager().hooks


def test_providers_manager_lists_the_provider_and_the_butlr_hook() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert DISTRIBUTION in manager.providers
    assert manager.providers[DISTRIBUTION].version == __version__
    hook = runtime_hooks()["butlr"]
    assert hook is not None
    assert (hook.hook_class_name, hook.hook_name, hook.package_name) == (HOOK_CLASS, "Butlr", DISTRIBUTION)
    assert hook.connection_id_attribute_name == "butlr_conn_id"
    assert hook.connection_testable


@pytest.mark.skipif(not AIRFLOW_V_3_2_PLUS, reason="declarative connection forms arrived in Airflow 3.2")
def test_providers_manager_reads_the_declarative_form() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    behaviour = manager.field_behaviours["butlr"]
    assert behaviour["hidden_fields"] == UI_FIELD_BEHAVIOUR["hidden-fields"]
    assert behaviour["relabeling"] == UI_FIELD_BEHAVIOUR["relabeling"]
    assert behaviour["placeholders"] == UI_FIELD_BEHAVIOUR["placeholders"]
    assert {f"extra__butlr__{name}" for name in CONN_FIELDS} <= set(manager.connection_form_widgets)


# --- provider info against Airflow's schemas ------------------------------------------------------


def test_provider_info_validates_against_the_runtime_schema() -> None:
    jsonschema.validate(get_provider_info(), airflow_schema("provider_info.schema.json"))


def connection_type_schema() -> dict[str, Any]:
    return airflow_schema("provider.yaml.schema.json")["properties"]["connection-types"]["items"]


def test_connection_type_validates_against_the_provider_yaml_schema() -> None:
    jsonschema.validate(butlr_connection_type(), connection_type_schema())


@pytest.mark.skipif(
    "conn-fields" not in connection_type_schema().get("properties", {}),
    reason=f"provider.yaml.schema.json of Airflow {AIRFLOW_VERSION} does not describe conn-fields (3.2+)",
)
@pytest.mark.parametrize(
    ("path", "bad_value"),
    [
        (("conn-fields", "timeout", "schema", "format"), "seconds"),  # not one of the allowed formats
        (("conn-fields", "audience", "widget"), "text"),  # only label, description, schema
        (("ui-field-behaviour", "hidden-fields"), ["tenant"]),  # not a standard field
    ],
)
def test_the_provider_yaml_schema_is_strict_enough_to_catch_mistakes(
    path: tuple[str, ...], bad_value: Any
) -> None:
    """Guards the validation test above: it must fail for a broken entry, not pass vacuously."""
    entry = copy.deepcopy(butlr_connection_type())
    target = entry
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = bad_value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(entry, connection_type_schema())


def test_field_behaviour_validates_against_the_core_behaviour_schema() -> None:
    """Core converts ``ui-field-behaviour`` to snake_case and validates it with this schema."""
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    schema = airflow_schema("customized_form_field_behaviours.schema.json")
    jsonschema.validate(ButlrHook.get_ui_field_behaviour(), schema)


# --- the connection form as the UI receives it ----------------------------------------------------

HOOK_META_PROBE = """
import importlib.abc, json, sys

class BlockFormLibraries(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, BlockFormLibraries())
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

(meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "butlr"]
real_form_libraries = [
    name for name, module in sys.modules.items()
    if name.split(".")[0] in {blocked!r} and getattr(module, "__file__", None)
]
print(json.dumps({{
    "meta": meta.model_dump(mode="json"),
    "hook_imported": "airflow_provider_butlr.hooks.butlr" in sys.modules,
    "real_form_libraries": real_form_libraries,
}}))
"""


@pytest.fixture(scope="module")
def hook_meta() -> dict[str, Any]:
    """``HookMetaService.hook_meta_data()`` for ``butlr``, in a fresh interpreter without WTForms.

    A subprocess, because on 3.1 the service leaves mocked WTForms classes in the process.
    """
    if not AIRFLOW_V_3_1_PLUS:
        pytest.skip(
            f"Airflow {AIRFLOW_VERSION} fills the connection form only when WTForms and FAB are installed "
            "(the WTForms mocks arrived in 3.1); the form there comes from the legacy hook methods, "
            "checked by the parity tests below"
        )
    return run_python(HOOK_META_PROBE.format(blocked=FORM_LIBRARIES))


def test_hook_meta_needs_no_form_library(hook_meta: dict[str, Any]) -> None:
    assert hook_meta["real_form_libraries"] == []


def test_hook_meta_names_the_connection_type(hook_meta: dict[str, Any]) -> None:
    meta = hook_meta["meta"]
    assert (meta["hook_name"], meta["hook_class_name"]) == ("Butlr", HOOK_CLASS)


@pytest.mark.parametrize(
    ("field", "title"),
    [("login", "Client ID"), ("password", "Client Secret"), ("host", "API base URL"), ("port", "Port")],
)
def test_hook_meta_relabels_the_standard_fields(hook_meta: dict[str, Any], field: str, title: str) -> None:
    standard = hook_meta["meta"]["standard_fields"][field]
    assert standard["title"] == title
    assert standard["hidden"] is False
    assert standard["placeholder"] == UI_FIELD_BEHAVIOUR["placeholders"][field]


def test_hook_meta_shows_the_default_api_url_as_host_placeholder(hook_meta: dict[str, Any]) -> None:
    assert hook_meta["meta"]["standard_fields"]["host"]["placeholder"] == DEFAULT_BASE_URL


def test_hook_meta_hides_the_schema(hook_meta: dict[str, Any]) -> None:
    assert hook_meta["meta"]["standard_fields"]["url_schema"]["hidden"] is True


def test_hook_meta_shows_the_port_with_a_placeholder_that_asks_for_it(hook_meta: dict[str, Any]) -> None:
    """Issue 25: Airflow 3.3.2's Test button sends ``port: 0`` for a connection saved without a port
    and the API answers "Bad Request" (apache/airflow#73298); a stored port avoids it, so the form
    must show the field. Airflow offers no default value for it: the placeholder asks for 443."""
    port = hook_meta["meta"]["standard_fields"]["port"]
    assert port["hidden"] is False
    assert port["title"] == "Port"  # 3.0/3.1 would say "port"
    assert port["placeholder"] == UI_FIELD_BEHAVIOUR["placeholders"]["port"]
    assert port["placeholder"].startswith("443 ") and "type it" in port["placeholder"]


def test_the_port_field_is_not_hidden_in_either_form() -> None:
    """The declarative form (3.2+) and the legacy hook method (3.0/3.1) alike (issue 25)."""
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    assert UI_FIELD_BEHAVIOUR["hidden-fields"] == ["schema"]
    assert "port" not in ButlrHook.get_ui_field_behaviour()["hidden_fields"]
    assert "port" in ButlrHook.get_ui_field_behaviour()["placeholders"]


def test_hook_meta_lists_exactly_the_seven_extra_fields(hook_meta: dict[str, Any]) -> None:
    assert set(hook_meta["meta"]["extra_fields"]) == {
        "audience",
        "auth_type",
        "timeout",
        "max_retries",
        "max_requests_per_minute",
        "max_rate_limit_wait",
        "redis_conn_id",
    }


@pytest.mark.parametrize("name", sorted(CONN_FIELDS))
def test_hook_meta_extra_field_has_label_default_and_type(hook_meta: dict[str, Any], name: str) -> None:
    declared = CONN_FIELDS[name]
    field = hook_meta["meta"]["extra_fields"][name]
    assert field["schema"]["title"] == declared["label"]
    assert field["value"] == declared["schema"]["default"]
    assert field["schema"]["type"] == declared["schema"]["type"]
    assert field["description"] == declared["description"]


def test_hook_meta_offers_auth_type_as_a_choice(hook_meta: dict[str, Any]) -> None:
    """A dropdown on every minor: 3.2+ from ``conn-fields``, 3.0/3.1 from the hook's ``any_of`` validator."""
    field = hook_meta["meta"]["extra_fields"]["auth_type"]
    assert field["schema"]["enum"] == CONN_FIELDS["auth_type"]["schema"]["enum"]


def test_hook_meta_does_not_import_the_hook_on_3_3(hook_meta: dict[str, Any]) -> None:
    if not AIRFLOW_V_3_3_PLUS:
        pytest.skip(f"Airflow {AIRFLOW_VERSION} builds the connection form by importing every hook")
    assert hook_meta["hook_imported"] is False


# --- legacy hook classmethods (the form on Airflow 3.0/3.1) agree with the provider info ---------


class RecordedField:
    """Stands in for a WTForms field class: records what the hook passes to it."""

    def __init__(self, kind: str, label: Any = None, validators: Any = None, **kwargs: Any) -> None:
        self.kind = kind
        self.label = label
        self.validators = list(validators or [])
        self.kwargs = kwargs


class RecordedValidator:
    def __init__(self, kind: str, *args: Any, **kwargs: Any) -> None:
        self.kind, self.args, self.kwargs = kind, args, kwargs


def recorder(kind: str, cls: type) -> Any:
    return lambda *args, **kwargs: cls(kind, *args, **kwargs)


@pytest.fixture
def recording_form_libraries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Minimal WTForms / flask-babel / FAB modules, so the legacy method runs without installing them."""
    wtforms = types.ModuleType("wtforms")
    for kind in ("StringField", "IntegerField", "PasswordField", "BooleanField"):
        setattr(wtforms, kind, recorder(kind, RecordedField))
    validators = types.ModuleType("wtforms.validators")
    for kind in ("Optional", "NumberRange", "AnyOf", "any_of", "DataRequired", "Length"):
        setattr(validators, kind, recorder(kind, RecordedValidator))
    babel = types.ModuleType("flask_babel")
    babel.lazy_gettext = lambda text: text  # type: ignore[attr-defined]
    fab = types.ModuleType("flask_appbuilder")
    widgets = types.ModuleType("flask_appbuilder.fieldwidgets")
    for widget in ("BS3TextFieldWidget", "BS3PasswordFieldWidget", "BS3TextAreaFieldWidget"):
        setattr(widgets, widget, lambda: None)
    wtforms.validators = validators  # type: ignore[attr-defined]
    fab.fieldwidgets = widgets  # type: ignore[attr-defined]
    modules = {
        "wtforms": wtforms,
        "wtforms.validators": validators,
        "flask_babel": babel,
        "flask_appbuilder": fab,
        "flask_appbuilder.fieldwidgets": widgets,
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    yield


@pytest.fixture
def legacy_widgets(recording_form_libraries: None) -> dict[str, RecordedField]:
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    return ButlrHook.get_connection_form_widgets()


def test_legacy_widgets_are_exactly_the_declared_fields(legacy_widgets: dict[str, RecordedField]) -> None:
    assert set(legacy_widgets) == set(CONN_FIELDS)


@pytest.mark.parametrize("name", sorted(CONN_FIELDS))
def test_legacy_widget_matches_the_declared_field(
    legacy_widgets: dict[str, RecordedField], name: str
) -> None:
    declared = CONN_FIELDS[name]
    widget = legacy_widgets[name]
    json_type = next(t for t in declared["schema"]["type"] if t != "null")
    expected_kind = (
        "PasswordField" if declared["schema"].get("format") == "password" else JSON_TYPE_TO_WTFORMS[json_type]
    )
    assert widget.kind == expected_kind
    assert str(widget.label) == declared["label"]
    assert widget.kwargs.get("default") == declared["schema"].get("default")
    assert widget.kwargs.get("description") == declared["description"]


@pytest.mark.parametrize("name", sorted(n for n, f in CONN_FIELDS.items() if "minimum" in f["schema"]))
def test_legacy_widget_enforces_the_declared_minimum(
    legacy_widgets: dict[str, RecordedField], name: str
) -> None:
    (number_range,) = [v for v in legacy_widgets[name].validators if v.kind == "NumberRange"]
    assert number_range.kwargs.get("min") == CONN_FIELDS[name]["schema"]["minimum"]


@pytest.mark.parametrize("name", sorted(n for n, f in CONN_FIELDS.items() if "enum" in f["schema"]))
def test_legacy_widget_offers_the_declared_choices(
    legacy_widgets: dict[str, RecordedField], name: str
) -> None:
    """Only ``wtforms.validators.any_of`` becomes an enum in Airflow 3.0-3.2's mocked form."""
    (choice,) = [v for v in legacy_widgets[name].validators if v.kind == "any_of"]
    assert list(choice.args[0]) == CONN_FIELDS[name]["schema"]["enum"]


def test_legacy_field_behaviour_is_the_declared_one_in_snake_case() -> None:
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    expected = {key.replace("-", "_"): value for key, value in UI_FIELD_BEHAVIOUR.items()}
    assert ButlrHook.get_ui_field_behaviour() == expected


def test_hook_class_attributes_match_the_connection_type() -> None:
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    entry = butlr_connection_type()
    assert f"{ButlrHook.__module__}.{ButlrHook.__qualname__}" == entry["hook-class-name"]
    assert (ButlrHook.conn_type, ButlrHook.hook_name) == (entry["connection-type"], entry["hook-name"])


# --- discovery stays cheap ---------------------------------------------------------------------

PROVIDER_INFO_PROBE = f"""
import json, sys
from importlib.metadata import entry_points
(ep,) = [e for e in entry_points(group="apache_airflow_provider") if e.dist.name == {DISTRIBUTION!r}]
ep.load()()
print(json.dumps(sorted(sys.modules)))
"""


def test_get_provider_info_imports_nothing_heavy() -> None:
    loaded = run_python(PROVIDER_INFO_PROBE)
    assert "airflow_provider_butlr" in loaded
    heavy = [name for name in loaded if any(name == h or name.startswith(h + ".") for h in HEAVY_MODULES)]
    assert heavy == []


def test_the_legacy_form_methods_are_the_hook_classes_own() -> None:
    """Airflow 3.0/3.1 read them from ``hook_class.__dict__`` only: inherited ones give no form."""
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    assert {"get_ui_field_behaviour", "get_connection_form_widgets"} <= set(ButlrHook.__dict__)
