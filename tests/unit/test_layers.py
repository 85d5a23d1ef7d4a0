"""The import-layer contract of the package (docs/architecture.md, "The layers"), read from the code.

Every import of every module counts: at the top, inside functions and under ``TYPE_CHECKING``.

* ``common`` (pure helpers) and ``exceptions`` are leaves every layer may use;
* ``reporting`` (the Butlr domain), ``polling`` (poll plans and conditions) and ``push`` (webhook
  payloads, dedup, subscriptions) import neither ``client``, ``hooks``, the Airflow classes nor Airflow
  itself;
* ``client`` (transport and auth) is used only by ``hooks``;
* the Airflow classes (operators, sensors, triggers, assets, lineage) reach the API through ``hooks``;
* ``testing`` (the emulator) imports nothing of the provider.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.airflow_independent  # pure: run once, not per Airflow minor

PACKAGE = "airflow_provider_butlr"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE

# Modules at the package root and the layer each belongs to; any other root module is a violation.
ROOT_MODULES = {
    "__init__": "facts",
    "exceptions": "exceptions",
    "assets": "airflow",
    "lineage": "airflow",
    "conditions": "airflow",
}
FOLDERS = {
    "common": "common",
    "client": "client",
    "reporting": "reporting",
    "polling": "polling",
    "push": "push",
    "hooks": "hooks",
    "operators": "airflow",
    "sensors": "airflow",
    "triggers": "airflow",
    "webhooks": "airflow",  # the receiver plugin (Airflow's api-server)
    "testing": "testing",
}
ALLOWED = {
    "facts": set(),
    "exceptions": set(),
    "common": {"exceptions"},
    "reporting": {"facts", "exceptions", "common", "reporting"},
    "polling": {"facts", "exceptions", "common", "reporting", "polling"},
    "push": {"facts", "exceptions", "common", "reporting", "polling", "push"},
    "client": {"facts", "exceptions", "common", "client"},
    "hooks": {"facts", "exceptions", "common", "client", "reporting", "polling", "push", "hooks"},
    "airflow": {"facts", "exceptions", "common", "reporting", "polling", "push", "hooks", "airflow"},
    "testing": {"testing"},
}
WITHOUT_AIRFLOW = {"common", "reporting", "polling", "push", "testing"}  # pure: never import Airflow itself


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    """The layer of a module of the package, None when it belongs to none (a misplaced module)."""
    parts = module.split(".")
    if parts == [PACKAGE]:
        return "facts"
    if len(parts) == 2:
        return FOLDERS.get(parts[1], ROOT_MODULES.get(parts[1]))
    return FOLDERS.get(parts[1])


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in the file, relative ones resolved."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            # "from airflow_provider_butlr import hooks" imports a sub-package (names of the package's
            # __init__, such as __version__, are its facts)
            found += [
                (node.lineno, f"{base}.{alias.name}")
                for alias in node.names
                if base == PACKAGE and ((ROOT / alias.name).is_dir() or (ROOT / f"{alias.name}.py").is_file())
            ]
    return found


def violations() -> list[str]:
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        module = module_name(path)
        layer = layer_of(module)
        if layer is None:
            problems.append(f"{module}: belongs to no layer (put it in a layer's folder)")
            continue
        for line, target in imports_of(path):
            where = f"{path.relative_to(ROOT.parent)}:{line}"
            top = target.split(".")[0]
            if top == "airflow" and layer in WITHOUT_AIRFLOW:
                problems.append(f"{where}: {layer} imports Airflow ({target})")
            if top != PACKAGE or target == module:
                continue
            target_layer = "facts" if target == PACKAGE and layer != "facts" else layer_of(target)
            if target_layer is None or target_layer not in ALLOWED[layer] | {layer}:
                problems.append(f"{where}: {layer} ({module}) imports {target_layer} ({target})")
    return problems


def test_every_import_keeps_the_layers() -> None:
    problems = violations()
    assert not problems, "layer contract broken:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        (PACKAGE, "facts"),
        (f"{PACKAGE}.exceptions", "exceptions"),
        (f"{PACKAGE}.client.flow", "client"),
        (f"{PACKAGE}.reporting.answer", "reporting"),
        (f"{PACKAGE}.operators.butlr", "airflow"),
        (f"{PACKAGE}.push.streams", "push"),
        (f"{PACKAGE}.webhooks.receiver", "airflow"),
        (f"{PACKAGE}.exchange", None),  # a flat module outside the layers is itself a violation
    ],
)
def test_modules_are_placed_by_folder(module: str, layer: str | None) -> None:
    assert layer_of(module) == layer
