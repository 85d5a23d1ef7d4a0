"""msgspec, when it is installed and new enough: the fast JSON paths use it, the others fall back.

Airflow 3.0-3.3 all bring msgspec (0.22 at the time of writing) but do not pin it; an environment
with an old or no msgspec gets the ``json`` paths, with the same results.
"""

from __future__ import annotations

from typing import Any


def msgspec_with(*features: str) -> Any | None:
    """The msgspec module when it has every dotted name in ``features``, else None."""
    try:
        import msgspec
    except ImportError:
        return None
    for feature in features:
        target: Any = msgspec
        for part in feature.split("."):
            target = getattr(target, part, None)
            if target is None:
                return None
    return msgspec
