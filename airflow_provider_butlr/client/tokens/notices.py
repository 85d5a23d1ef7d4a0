"""One WARNING per topic and process: the stores degrade quietly after saying so once."""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("airflow_provider_butlr.client.tokens")

_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_once(topic: str, message: str, *args: Any) -> None:
    with _warned_lock:
        if topic in _warned:
            return
        _warned.add(topic)
    log.warning(message, *args)
