"""Declarative argument checks: one function per rule, run on literal values when a DAG file is
parsed and on every value after templates are rendered (pure: it reads attributes, nothing else).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.reporting.validation import check_positive_int, validate_ids


def is_literal(value: Any) -> bool:
    """A plain value that is final at parse time (not a template string, XComArg or mapped argument)."""
    if value is None or isinstance(value, (bool, int, float, date)):
        return True
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    if isinstance(value, (list, tuple)):
        return all(is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_literal(v) for k, v in value.items())
    return False


@dataclass(frozen=True)
class Check:
    """One argument check: ``fn(*values of fields)``, its result kept under ``name``.

    The same checks run at construction (on the fields whose values are final: plain values, or
    fields that are not templated) and after rendering (on every field): one function per rule.
    ``final_only`` checks wait for the rendered values (e.g. "at least one asset").
    """

    name: str
    fields: tuple[str, ...]
    fn: Callable[..., Any]
    final_only: bool = False


def run_checks(task: Any, checks: Sequence[Check], *, final: bool) -> dict[str, Any]:
    """Apply ``checks`` to a task (an operator or sensor); ``{check name: result}``.

    Errors name the task and the argument.
    """
    templated = set(task.template_fields)
    results: dict[str, Any] = {}
    for check in checks:
        values = [getattr(task, name) for name in check.fields]
        ready = final or (
            not check.final_only
            and all(n not in templated or is_literal(v) for n, v in zip(check.fields, values, strict=True))
        )
        if not ready:
            continue
        try:
            results[check.name] = check.fn(*values)
        except ButlrConfigurationError as err:
            prefix = f"{task.task_id}: "
            message = str(err)
            raise ButlrConfigurationError(
                message if message.startswith(prefix) else prefix + message
            ) from err
    return results


def positive_int(name: str) -> Callable[[Any], Any]:
    return lambda value: check_positive_int(value, name)


def optional(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``fn`` for a value that may be None (None passes)."""
    return lambda value: None if value is None else fn(value)


def ids_of(kind: str) -> Callable[[Any], list[str]]:
    return lambda value: validate_ids(kind, value)


def check_callable(value: Any, name: str) -> None:
    if value is not None and not callable(value):
        raise ButlrConfigurationError(f"{name} must be a callable, got {type(value).__name__}")
