"""The emulator in its own process, steered over a pipe.

A benchmark client must not share a GIL with the server it measures: in one process every server
thread competes with the client for the interpreter lock, and the client's overhead would be
charged to whoever holds it. So the emulator runs in a child process (one core each on a 2-core
machine) and the parent sends it one JSON command per line on stdin (latency, clock, counters).

Run as ``python -m benchmarks.emulator_process '{"size": "large"}'`` (the runner does this).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from typing import Any

from benchmarks.common import REPO


class EmulatorProcess:
    """Client side: start the child, send commands, read answers."""

    def __init__(self, **emulator_kwargs: Any) -> None:
        self._kwargs = emulator_kwargs
        self._proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> EmulatorProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.emulator_process", json.dumps(self._kwargs)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        line = self._proc.stdout.readline() if self._proc.stdout else ""
        if not line:
            self._proc.wait(timeout=10)
            raise RuntimeError(f"emulator process exited with {self._proc.returncode} before it was ready")
        self.info = json.loads(line)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._proc is None:
            return
        if self._proc.stdin:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.terminate()
            self._proc.wait(timeout=5)
        self._proc = None

    def call(self, op: str, **args: Any) -> Any:
        """Run one command in the emulator process and return its JSON answer."""
        assert self._proc is not None and self._proc.stdin and self._proc.stdout, "emulator not started"
        self._proc.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
        self._proc.stdin.flush()
        answer = json.loads(self._proc.stdout.readline() or '{"error": "emulator process died"}')
        if "error" in answer:
            raise RuntimeError(f"emulator command {op} failed: {answer['error']}")
        return answer["result"]

    @property
    def url(self) -> str:
        return str(self.info["url"])

    @property
    def pid(self) -> int:
        return int(self.info["pid"])

    def credentials(self) -> tuple[str, str, str, str]:
        """url, client id, client secret, audience."""
        return self.url, self.info["client_id"], self.info["client_secret"], self.info["audience"]

    def set_config(self, **fields: Any) -> None:
        self.call("set_config", **fields)

    def logins(self) -> int:
        return int(self.call("logins"))

    def requests(self, path: str | None = None) -> int:
        return int(self.call("requests", path=path))

    def reset_counters(self) -> None:
        self.call("reset_counters")

    def clock_now(self) -> datetime:
        return datetime.fromisoformat(self.call("clock_now"))

    def clock_set(self, moment: datetime, *, tick: bool = True) -> None:
        self.call("clock_set", moment=moment.isoformat(), tick=tick)

    def clock_advance(self, seconds: float) -> None:
        self.call("clock_advance", seconds=seconds)

    def clock_reset(self) -> None:
        """Back to real time."""
        self.call("clock_reset")

    def asset_ids(self, kind: str, limit: int | None = None) -> list[str]:
        """Ids of ``rooms`` / ``floors`` / ``zones`` in the org's stable order."""
        return list(self.call("asset_ids", kind=kind, limit=limit))

    def site_of(self, floor_id: str) -> dict[str, Any]:
        return dict(self.call("site_of", floor_id=floor_id))


# --- child side --------------------------------------------------------------------------------


def _ops(emu: Any) -> dict[str, Any]:
    def set_config(**fields: Any) -> None:
        for name, value in fields.items():
            # reporting_*/stats_* knobs are read with getattr defaults by the time-series engine
            if not hasattr(emu.config, name) and not name.startswith(("reporting_", "stats_")):
                raise AttributeError(f"EmulatorConfig has no field {name!r}")
            setattr(emu.config, name, value)

    def asset_ids(kind: str, limit: int | None) -> list[str]:
        index = {"rooms": emu.org.rooms_by_id, "floors": emu.org.floors_by_id, "zones": emu.org.zones_by_id}
        ids = list(index[kind])
        return ids if limit is None else ids[:limit]

    def site_of(floor_id: str) -> dict[str, Any]:
        site = emu.org.site_of_floor(floor_id)
        return {"id": site.id, "timezone": site.timezone}

    def rooms_by_site() -> list[dict[str, Any]]:
        return [
            {
                "id": site.id,
                "timezone": site.timezone,
                "rooms": [r.id for b in site.buildings for f in b.floors for r in f.rooms],
            }
            for site in emu.org.sites
        ]

    return {
        "set_config": set_config,
        "logins": lambda: emu.counters.logins,
        "requests": lambda path=None: emu.counters.requests(path),
        "statuses": lambda status: sum(1 for r in emu.counters.log if r.status == status),
        "reset_counters": lambda: emu.counters.reset(),
        "clock_now": lambda: emu.clock.now().isoformat(),
        "clock_set": lambda moment, tick=True: emu.clock.set(datetime.fromisoformat(moment), tick=tick),
        "clock_advance": lambda seconds: emu.clock.advance(seconds).isoformat(),
        "clock_reset": lambda: emu.clock.reset(),
        "asset_ids": asset_ids,
        "site_of": site_of,
        "rooms_by_site": rooms_by_site,
        "request_times": lambda path: [r.timestamp for r in emu.counters.log if r.path == path],
    }


def serve(kwargs: dict[str, Any]) -> None:
    """Start the emulator, announce it on stdout, then answer commands until stdin closes."""
    import os

    from airflow_provider_butlr.testing import ButlrEmulator

    with ButlrEmulator(port=0, **kwargs) as emu:
        ops = _ops(emu)
        info = {
            "url": emu.url,
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
            "audience": emu.audience,
            "pid": os.getpid(),
        }
        print(json.dumps(info), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            try:
                answer: dict[str, Any] = {"result": ops[command["op"]](**command.get("args", {}))}
            except Exception as err:  # report to the parent instead of dying mid-benchmark
                answer = {"error": f"{type(err).__name__}: {err}"}
            print(json.dumps(answer, default=str), flush=True)


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
