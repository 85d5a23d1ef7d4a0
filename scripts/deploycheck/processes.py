"""Components as process groups: start with a log file, stop by process group, tail the log."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, session) of ``pid`` from /proc, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # pid (comm) state ppid pgrp session ...: comm may hold spaces and parentheses
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[2]), int(fields[3])


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``.

    A component started with ``setsid`` is session and process group leader; Airflow's task
    runners move to process groups of their own (``setpgid``) but stay in the session.
    """
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[2] == sid and stat[0] != "Z":
                members.append(int(entry.name))
    return members


class Component:
    """One started process in its own session (its PID is the session and process group id), output
    to a log; stopped with everything in its session (the process group and groups made inside it)."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path) -> None:
        self.name, self.argv, self.log, self.env, self.cwd = name, list(argv), log, dict(env), cwd
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was not started"
        return self.process.pid

    def start(self) -> Component:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        print(f">> {self.name} started (pid/pgid {self.pid}, log {self.log.name})", flush=True)
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def members(self) -> list[int]:
        return session_members(self.pid) if self.process is not None else []

    def other_groups(self) -> list[int]:
        """Processes of the session outside the component's process group (e.g. task runners)."""
        return [pid for pid in self.members() if (_stat(pid) or ("", self.pid, 0))[1] != self.pid]

    def send(self, sig: int) -> list[int]:
        """SIGKILL: the group and every process of the session; other signals: the leader only
        (the component forwards them to its children itself). Answers the session's PIDs."""
        members = self.members()
        with contextlib.suppress(ProcessLookupError):
            if sig == signal.SIGKILL:
                os.killpg(self.pid, sig)
            else:  # the leader stops its own children: a signal to each of them at once makes
                os.kill(self.pid, sig)  # Airflow's executor workers log tracebacks while exiting
        if sig == signal.SIGKILL:
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        return members

    def wait_gone(self, timeout: float) -> bool:
        """Wait until no process of the session is left (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None:
                self.process.poll()  # reap the leader (the others are reaped by init)
            if not self.members():
                if self.process is not None:  # it may have exited after the poll above: reap it
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.process.wait(timeout=1.0)
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def kill(self, sig: int = signal.SIGKILL, wait: float = 15.0) -> list[int]:
        """Send ``sig`` (see :meth:`send`), wait until the session is empty; answer the PIDs it held."""
        if self.process is None:
            return []
        members = self.send(sig)
        self.wait_gone(wait)
        return members

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM to the group, then SIGKILL to whatever is left after ``grace`` seconds."""
        if self.process is None:
            return
        if self.members():
            self.kill(signal.SIGTERM, wait=grace)
        if self.members():
            left = self.kill(signal.SIGKILL, wait=10.0)
            print(f">> {self.name}: SIGKILL to pids {left} (still running after SIGTERM)", flush=True)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        left = self.members()
        if left:
            raise RuntimeError(f"{self.name}: processes {left} of session {self.pid} survived SIGKILL")

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
