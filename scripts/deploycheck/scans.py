"""The check's two scans: secret bytes in a tree of files, and error-level lines in logs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

# Airflow 3.3's text formats (components' output): structlog's console renderer
# ``2026-11-26T02:40:00.123456Z [error    ] message [logger] key=value``, the stdlib format
# ``[2026-11-26T02:40:00.123+0000] {file.py:12} ERROR - message`` and uvicorn's ``ERROR:    message``.
# Task and dag-processor log files are JSON lines with ``"level": "error"``.
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TEXT_ERROR_LEVEL = re.compile(
    r"\[\s*(?:error|critical|exception|fatal)\s*\]"  # structlog console
    r"|\}\s+(?:ERROR|CRITICAL|FATAL)\s+-"  # stdlib: {file.py:12} ERROR -
    r"|^(?:ERROR|CRITICAL|FATAL):"  # uvicorn / logging.basicConfig
    r"|^(?:ERROR|CRITICAL)\s+-\s"  # bare ``%(levelname)s - %(message)s``
    r"|^Traceback \(most recent call last\):",  # an exception printed without a log call
    re.IGNORECASE,
)
JSON_ERROR_LEVELS = frozenset({"error", "critical", "exception", "fatal"})


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text[:300]}"


def secret_needles(secrets: Iterable[str]) -> dict[str, bytes]:
    """Each secret, its percent-encodings (``quote``, ``quote_plus``) and, for a JWT, its signature.

    Keys are descriptions that never hold the secret itself (safe to print).
    """
    needles: dict[str, bytes] = {}
    for index, secret in enumerate(s for s in secrets if s):
        forms = {
            "plain": secret,
            "percent-encoded": quote(secret, safe=""),
            "form-encoded": quote_plus(secret),
        }
        parts = secret.split(".")
        if len(parts) == 3 and len(parts[2]) >= 16:  # a JWT: its signature alone is a leak too
            forms["jwt signature"] = parts[2]
        seen: set[bytes] = set()
        for form, value in forms.items():
            data = value.encode()
            if data not in seen:
                seen.add(data)
                needles[f"secret #{index} ({form})"] = data
    return needles


def iter_files(roots: Iterable[Path], exclude: Iterable[Path] = ()) -> Iterator[Path]:
    excluded = {p.resolve() for p in exclude}
    for root in roots:
        if root.is_file():
            candidates: Iterable[Path] = [root]
        elif root.is_dir():
            candidates = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
        else:
            continue
        for path in candidates:
            if path.resolve() not in excluded:
                yield path


def scan_secrets(
    roots: Iterable[Path], needles: dict[str, bytes], exclude: Iterable[Path] = ()
) -> tuple[int, int, list[str]]:
    """Search every byte of every file under ``roots``: (files, bytes, ``["<path>: <needle>"]``)."""
    files = total = 0
    hits: list[str] = []
    for path in iter_files(roots, exclude):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        files += 1
        total += len(data)
        hits.extend(f"{path}: {name}" for name, needle in needles.items() if needle in data)
    return files, total, hits


def is_error_line(line: str) -> bool:
    """An error-level log line in one of Airflow 3.3's formats (JSON lines or text)."""
    text = ANSI.sub("", line).strip()
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if isinstance(record, dict):
            level = record.get("level") or record.get("levelname") or ""
            return str(level).lower() in JSON_ERROR_LEVELS
    return bool(TEXT_ERROR_LEVEL.search(text))


def _benign_exit_traceback(lines: list[str], index: int) -> bool:
    """A traceback Python prints for ``sys.exit(0)`` raised inside an ``atexit`` callback.

    Airflow's scheduler can show one while it shuts down after SIGTERM: its signal handler calls
    ``sys.exit(0)`` when a signal lands while ``multiprocessing``'s exit hook joins the executor's
    workers. The process still exits with 0; the lines are Python's ``Exception ignored in atexit
    callback`` report, not an error of any task or of this provider.
    """
    if index == 0 or not lines[index - 1].strip().startswith("Exception ignored in atexit callback"):
        return False
    for line in lines[index + 1 :]:
        if line[:1].isspace() or line.startswith("^"):
            continue
        return line.strip() == "SystemExit: 0"
    return False


def error_lines(paths: Iterable[Path]) -> list[Finding]:
    findings: list[Finding] = []
    for path in paths:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        findings.extend(
            Finding(path, n, line.strip())
            for n, line in enumerate(lines, 1)
            if is_error_line(line) and not _benign_exit_traceback(lines, n - 1)
        )
    return findings
