"""Say why Airflow could not find a connection, where its own "isn't defined" hides the cause."""

from __future__ import annotations

import os
import re

from airflow_provider_butlr.exceptions import ButlrConnectionNotFoundError

_TROUBLESHOOTING = "see 'Troubleshooting' in the provider's README"


def connection_not_found(conn_id: str, err: BaseException) -> ButlrConnectionNotFoundError:
    """The error to raise when Airflow's connection lookup for ``conn_id`` failed with ``err``.

    Airflow's Task SDK asks each secrets backend in turn and reports a backend that *raised* as
    "isn't defined" (the exception goes only to the log). When the connection is set as an
    environment variable, the environment backend is asked again here, so its real error (for
    example Airflow 3.0/3.1 with cryptography >= 51: ``AttributeError ... is_encrypted``) reaches
    the task's final error line. The variable's value never appears in the message.
    """
    env_name = "AIRFLOW_CONN_" + conn_id.upper()
    value = os.environ.get(env_name)
    if value is None:
        return ButlrConnectionNotFoundError(
            f"connection {conn_id!r} is not defined: Airflow found it in no secrets backend, no "
            f"environment variable ({env_name}) and not in the metadata database. Create it (Admin -> "
            f"Connections, type Butlr) or pass butlr_conn_id; if a secrets backend is configured, its "
            f"own error is in the task log ('Unable to retrieve connection from secrets backend'); "
            f"{_TROUBLESHOOTING}"
        )
    cause = _environment_backend_error(conn_id)
    if cause is None:
        return ButlrConnectionNotFoundError(
            f"connection {conn_id!r}: {env_name} is set and parses, but Airflow reported the connection "
            f"as not defined ({type(err).__name__}); look in the task log for 'Unable to retrieve "
            f"connection from secrets backend'; {_TROUBLESHOOTING}"
        )
    return ButlrConnectionNotFoundError(
        f"connection {conn_id!r}: {env_name} is set, but Airflow could not read it: "
        f"{_without(value, cause)}. A URI must percent-encode every part (or use the JSON form); "
        f"an AttributeError about 'is_encrypted' is Airflow 3.0/3.1 with cryptography >= 51 (pin "
        f"cryptography<51); {_TROUBLESHOOTING}"
    )


def _environment_backend_error(conn_id: str) -> BaseException | None:
    """What Airflow's environment-variable backend raises for ``conn_id`` (None: it reads fine)."""
    try:
        from airflow.secrets.environment_variables import EnvironmentVariablesBackend

        EnvironmentVariablesBackend().get_connection(conn_id)
    except Exception as exc:
        return exc
    return None


def _without(value: str, cause: BaseException) -> str:
    """``cause`` as one short line, with every piece of the variable's value (it may hold a secret) cut."""
    text = f"{type(cause).__name__}: {cause}".splitlines()[0][:300]
    for piece in sorted(set(re.split(r"[\s:@/?#&=,{}\"']+", value)), key=len, reverse=True):
        if len(piece) >= 4:
            text = text.replace(piece, "***")
    return text
