"""Deterministic fault injection: which request gets which failure."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = frozenset(
    {
        "status",
        "delay",
        "drop",
        "reset",
        "truncated_json",
        "empty_data",
        "graphql_partial",
        "unauthorized",
        "revoke",
        "clock_jump",
    }
)

# A predicate on the request's JSON body (None when the body is empty or not JSON).
BodyPredicate = Callable[[Any], bool]


@dataclass
class FaultRule:
    """One rule; see :meth:`FaultSchedule.add` for the meaning of each field."""

    path: str
    kind: str
    status: int | None = None
    retry_after: str | None = None
    body: str | bytes | None = None
    content_type: str | None = None
    delay: float = 0.0
    advance: float = 0.0
    when: BodyPredicate | None = None
    every: int | None = None
    at_calls: frozenset[int] | None = None
    times: int | None = None
    rate: float | None = None
    seed: int = 0
    calls: int = 0
    injected: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _schedule: FaultSchedule | None = field(default=None, repr=False)

    def matches(self, path: str, body: Any = None) -> bool:
        return path.startswith(self.path) and (self.when is None or bool(self.when(body)))

    def _fires(self) -> bool:
        """Decide whether this rule injects on its current call (caller holds the lock)."""
        if self.times is not None and self.injected >= self.times:
            return False
        if self.at_calls is not None:
            hit = self.calls in self.at_calls
        elif self.every is not None:
            hit = self.calls % self.every == 0
        elif self.rate is not None:
            hit = self._rng.random() < self.rate
        else:
            hit = True
        if hit:
            self.injected += 1
        return hit

    def remove(self) -> None:
        """Take this rule out of its schedule (no-op when already removed)."""
        if self._schedule is not None:
            self._schedule.remove(self)


class FaultSchedule:
    """The ordered list of active rules; the first rule that fires for a request wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(
        self,
        path: str = "/api/v3/reporting",
        kind: str = "status",
        status: int | None = None,
        retry_after: str | int | float | None = None,
        body: str | bytes | None = None,
        content_type: str | None = None,
        delay: float = 0.0,
        advance: float = 0.0,
        when: BodyPredicate | None = None,
        every: int | None = None,
        at_calls: Iterable[int] | None = None,
        times: int | None = None,
        rate: float | None = None,
        seed: int = 0,
    ) -> FaultRule:
        """Inject ``kind`` on requests whose path starts with ``path`` ("" = every path).

        Kinds ``revoke`` (revoke every token issued so far, then answer normally: a 401 for the
        request's now-revoked token) and ``clock_jump`` (move the emulator clock ``advance``
        seconds forward, then answer normally: tokens expire as they would) model tokens dying
        mid-export. ``when`` narrows the rule to requests whose JSON body satisfies it.

        Selection: ``at_calls`` (1-based numbers of matching calls since the rule was added),
        ``every`` (every n-th matching call), ``rate`` (probability, seeded and reproducible),
        none = every matching call; ``times`` caps the number of injections.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; allowed: {', '.join(sorted(FAULT_KINDS))}")
        if kind == "status" and status is None:
            raise ValueError("fault kind 'status' needs status=<HTTP code>, e.g. status=503")
        if kind == "clock_jump" and advance <= 0:
            raise ValueError("fault kind 'clock_jump' needs advance=<seconds> > 0, e.g. advance=1800")
        if every is not None and every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, got {rate}")
        if sum(x is not None for x in (every, at_calls, rate)) > 1:
            raise ValueError("give at most one of at_calls, every, rate")
        rule = FaultRule(
            path=path,
            kind=kind,
            status=status,
            retry_after=None if retry_after is None else str(retry_after),
            body=body,
            content_type=content_type,
            delay=delay,
            advance=advance,
            when=when,
            every=every,
            at_calls=None if at_calls is None else frozenset(at_calls),
            times=times,
            rate=rate,
            seed=seed,
            _rng=random.Random(seed),
        )
        rule._schedule = self
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule: FaultRule) -> None:
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def select(self, path: str, body: Any = None) -> FaultRule | None:
        """Count this call against every matching rule; return the first rule that fires."""
        chosen: FaultRule | None = None
        with self._lock:
            for rule in self._rules:
                if not rule.matches(path, body):
                    continue
                rule.calls += 1
                if chosen is None and rule._fires():
                    chosen = rule
        return chosen


# ``FaultSchedule.add`` keyword -> converter, for faults given as text (CLI ``--fault``, admin API).
_SPEC_FIELDS: dict[str, Callable[[str], Any]] = {
    "path": str,
    "kind": str,
    "status": int,
    "retry_after": str,
    "body": str,
    "content_type": str,
    "delay": float,
    "advance": float,
    "every": int,
    "at_calls": lambda text: [int(n) for n in text.replace(";", "+").split("+") if n.strip()],
    "times": int,
    "rate": float,
    "seed": int,
}
FAULT_SPEC_HELP = (
    "comma-separated key=value pairs, e.g. 'kind=status,status=503,times=2,path=/api/v3/reporting'; "
    f"keys: {', '.join(_SPEC_FIELDS)}; at_calls as 1+3+5; path defaults to /api/v3/reporting, "
    "'path=' matches every path"
)


def parse_fault_spec(spec: str | Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :meth:`FaultSchedule.add` from a spec string or a JSON object.

    ``"kind=status,status=503,times=2"`` and ``{"kind": "status", "status": 503, "times": 2}`` are the
    same fault. Raises ValueError naming the bad key or value.
    """
    if isinstance(spec, str):
        pairs: dict[str, Any] = {}
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"fault spec part {part!r} is not key=value ({FAULT_SPEC_HELP})")
            pairs[key.strip()] = value.strip()
    elif isinstance(spec, Mapping):
        pairs = dict(spec)
    else:
        raise ValueError(f"a fault spec is a string or an object, got {type(spec).__name__}")
    unknown = sorted(set(pairs) - set(_SPEC_FIELDS))
    if unknown:
        raise ValueError(f"unknown fault spec key(s) {unknown}; allowed: {', '.join(_SPEC_FIELDS)}")
    if "kind" not in pairs:
        raise ValueError(f"a fault spec needs kind=<{'|'.join(sorted(FAULT_KINDS))}>")
    kwargs: dict[str, Any] = {}
    for key, value in pairs.items():
        if value is None:
            continue
        try:
            kwargs[key] = _SPEC_FIELDS[key](value) if isinstance(value, str) else value
        except ValueError:
            raise ValueError(f"fault spec {key}={value!r} is not a valid {key}") from None
    if isinstance(kwargs.get("at_calls"), list):
        kwargs["at_calls"] = [int(n) for n in kwargs["at_calls"]]
    return kwargs


def describe_rule(rule: FaultRule) -> dict[str, Any]:
    """A JSON-safe view of a rule (``when`` predicates are shown only as present or not)."""
    body = rule.body.decode(errors="replace") if isinstance(rule.body, bytes) else rule.body
    return {
        "path": rule.path,
        "kind": rule.kind,
        "status": rule.status,
        "retry_after": rule.retry_after,
        "body": body,
        "content_type": rule.content_type,
        "delay": rule.delay,
        "advance": rule.advance,
        "every": rule.every,
        "at_calls": None if rule.at_calls is None else sorted(rule.at_calls),
        "times": rule.times,
        "rate": rule.rate,
        "seed": rule.seed,
        "has_when": rule.when is not None,
        "calls": rule.calls,
        "injected": rule.injected,
    }
