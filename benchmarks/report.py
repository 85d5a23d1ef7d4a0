"""Machine description and the Markdown table printed after a run (also pasted into the docs)."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from typing import Any

from benchmarks.common import REPO


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "airflow": _version("apache-airflow"),
        "airflow_task_sdk": _version("apache-airflow-task-sdk"),
        "apache_airflow_providers_http": _version("apache-airflow-providers-http"),
        "requests": _version("requests"),
        "airflow_provider_butlr": _version("airflow-provider-butlr"),
        "git_commit": _git_commit(),
    }


def _load_text(load: dict[str, list[float]] | None) -> str:
    """The 1/5/15-minute load averages before and after the run (other tenants make figures noisy)."""
    if not load:
        return ""
    before, after = ("/".join(f"{v:.2f}" for v in load[key]) for key in ("before", "after"))
    return f" Load average (1/5/15 min): {before} before, {after} after."


def render_markdown(report: dict[str, Any]) -> str:
    """The results table, the targets, and the machine, as Markdown."""
    out = ["| Scenario | Contender | Result |", "|---|---|---|"]
    for scenario in report["scenarios"]:
        title = scenario["title"]
        if scenario.get("error"):
            out.append(f"| {title} | - | FAILED: {scenario['error']} |")
            continue
        for i, (name, figures) in enumerate(scenario["contenders"].items()):
            out.append(f"| {title if i == 0 else ''} | {name} | {figures['summary']} |")
    out += ["", "| Target | Measured | Limit | Met |", "|---|---|---|---|"]
    for scenario in report["scenarios"]:
        for target in scenario.get("targets", []):
            unit = target.get("unit", "")
            out.append(
                f"| {target['description']} | {target['measured']:.3g}{unit} | "
                f"{target['comparison']} {target['limit']:.3g}{unit} | {'yes' if target['met'] else 'NO'} |"
            )
    machine = report["machine"]
    out += [
        "",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB RAM, "
        f"Python {machine['python']}, Airflow {machine['airflow']}, "
        f"apache-airflow-providers-http {machine['apache_airflow_providers_http']}, "
        f"requests {machine['requests']}; commit {machine['git_commit']}.",
        f"Command: `{report['command']}` ({report['total_seconds']:.0f} s)."
        + _load_text(report.get("load_average")),
    ]
    return "\n".join(out)
