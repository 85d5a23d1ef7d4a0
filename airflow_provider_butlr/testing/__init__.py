"""The bundled Butlr API emulator (``python -m airflow_provider_butlr.testing`` serves it).

Importing this package is cheap: the server, GraphQL schema and seed generator load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_butlr.testing.admin_client import EmulatorAdminClient, EmulatorAdminError
    from airflow_provider_butlr.testing.clock import EmulatorClock
    from airflow_provider_butlr.testing.config import EmulatorConfig
    from airflow_provider_butlr.testing.emulator import ButlrEmulator
    from airflow_provider_butlr.testing.org.seed import OrgSize, build_org

__all__ = [
    "ButlrEmulator",
    "EmulatorAdminClient",
    "EmulatorAdminError",
    "EmulatorClock",
    "EmulatorConfig",
    "OrgSize",
    "build_org",
]

_LAZY = {
    "EmulatorAdminClient": "airflow_provider_butlr.testing.admin_client",
    "EmulatorAdminError": "airflow_provider_butlr.testing.admin_client",
    "ButlrEmulator": "airflow_provider_butlr.testing.emulator",
    "EmulatorConfig": "airflow_provider_butlr.testing.config",
    "EmulatorClock": "airflow_provider_butlr.testing.clock",
    "OrgSize": "airflow_provider_butlr.testing.org.seed",
    "build_org": "airflow_provider_butlr.testing.org.seed",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
