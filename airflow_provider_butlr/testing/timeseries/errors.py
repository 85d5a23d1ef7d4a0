"""Errors of the emulator's reporting and stats endpoints, with the HTTP status they map to."""

from __future__ import annotations

from typing import Any


class ReportingError(Exception):
    """A reporting/stats request the emulator refuses; ``status`` is the HTTP status to answer with."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        """The JSON error body (the real body is undocumented; this follows the early MCP notes)."""
        return {"error": self.message, "code": self.status}


class BadRequest(ReportingError):
    """HTTP 400: the body breaks the request schema; the message names the field and allowed values."""

    status = 400


class Overloaded(ReportingError):
    """HTTP 504: the stats query is too large for the (configured) processing budget."""

    status = 504
