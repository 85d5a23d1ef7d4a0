"""``python -m airflow_provider_butlr.testing``: serve the Butlr API emulator until Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from airflow_provider_butlr.testing.config import EmulatorConfig
from airflow_provider_butlr.testing.emulator import ButlrEmulator
from airflow_provider_butlr.testing.org.seed import SIZE_PRESETS


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_butlr.testing",
        description="Serve the Butlr API emulator on 127.0.0.1.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one (default 8765)")
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed of the generated org (default 42)"
    )
    parser.add_argument("--size", choices=sorted(SIZE_PRESETS), default="small", help="org size preset")
    parser.add_argument(
        "--token-lifetime", type=int, default=defaults.token_lifetime, help="access token lifetime in seconds"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every data request")
    parser.add_argument(
        "--ready-file", type=Path, help="write the URL to this file once the server is listening"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the URL")
    return parser.parse_args(argv)


def banner(emu: ButlrEmulator) -> str:
    """The URL, credentials, an ``AIRFLOW_CONN_BUTLR_DEFAULT`` value and a few asset ids to try."""
    org = emu.org
    site = org.sites[0]
    floor = site.buildings[0].floors[0]
    rooms = [r.id for r in floor.rooms[:3]]
    lines = [
        f"Butlr API emulator listening on {emu.url}",
        "",
        "Credentials (emulator defaults, never real ones):",
        f"  client_id      {emu.client_id}",
        f"  client_secret  {emu.client_secret}",
        f"  username       {emu.username}",
        f"  password       {emu.password}",
        f"  audience       {emu.audience}",
        f"  token lifetime {emu.config.token_lifetime} s",
        "",
        "Airflow connection:",
        f"  export AIRFLOW_CONN_BUTLR_DEFAULT='{emu.connection_json()}'",
        "",
        f"Org {org.id}: {len(org.sites)} sites, {len(org.floors_by_id)} floors, {len(org.rooms_by_id)} rooms, "
        f"{len(org.sensors_by_id)} sensors (seed {emu.config.seed}, size {emu.config.size})",
        f"  site   {site.id}  {site.name} ({site.timezone})",
        f"  floor  {floor.id}  {floor.name}",
        *(f"  room   {room_id}" for room_id in rooms),
        "",
        "Try:",
        f"  TOKEN=$(curl -s -X POST {emu.url}/api/v2/clients/login -H 'Content-Type: application/json' \\",
        f"    -d '{json.dumps(_login_body(emu))}' | python -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')",
        f'  curl -s -X POST {emu.url}/api/v3/graphql -H "Authorization: Bearer $TOKEN" '
        "-H 'Content-Type: application/json' -d '{\"query\": \"{ sites { data { id name timezone } } }\"}'",
        "",
        "Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def _login_body(emu: ButlrEmulator) -> dict[str, str]:
    return {
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "audience": emu.audience,
        "grant_type": "client_credentials",
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    emu = ButlrEmulator(
        port=args.port,
        host=args.host,
        seed=args.seed,
        size=args.size,
        token_lifetime=args.token_lifetime,
        latency=args.latency,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with emu:
        print(emu.url if args.quiet else banner(emu), flush=True)
        if args.ready_file is not None:
            tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
            tmp.write_text(emu.url + "\n")
            os.replace(tmp, args.ready_file)  # atomic: readers never see a half-written URL
        while not stop.wait(0.5):
            pass
    print("Butlr API emulator stopped.", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
