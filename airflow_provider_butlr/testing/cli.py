"""The emulator's command line (``python -m airflow_provider_butlr.testing``): serve until Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_butlr.testing.clock import CLOCK_SPEC_HELP, EmulatorClock
from airflow_provider_butlr.testing.config import EmulatorConfig
from airflow_provider_butlr.testing.emulator import DEFAULT_EVENT_TYPES, ButlrEmulator
from airflow_provider_butlr.testing.http.admin import admin_enabled
from airflow_provider_butlr.testing.http.faults import FAULT_SPEC_HELP
from airflow_provider_butlr.testing.org.seed import SIZE_PRESETS
from airflow_provider_butlr.testing.webhook_events import DELIVERED_TYPES
from airflow_provider_butlr.testing.webhook_outbound import loopback_problem, shown_url

# --webhook-tidy: Butlr's untidiness off.
TIDY: dict[str, Any] = {"webhook_revision_rate": 0.0, "webhook_duplicate_rate": 0.0, "webhook_shuffle": False}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_butlr.testing",
        description="Serve the Butlr API emulator on 127.0.0.1 (admin API under /_emulator/).",
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
        "--clock",
        help=f"start the emulator clock at {CLOCK_SPEC_HELP} (it keeps ticking unless --frozen)",
    )
    parser.add_argument("--frozen", action="store_true", help="freeze the clock (at --clock, or at start)")
    parser.add_argument(
        "--data-lag-minutes",
        type=int,
        default=defaults.data_lag_minutes,
        help=f"the newest data is this many minutes old (default {defaults.data_lag_minutes})",
    )
    parser.add_argument(
        "--rate-limit-per-minute",
        type=int,
        help="data requests allowed per sliding 60 s window; beyond it HTTP 429 with Retry-After",
    )
    parser.add_argument(
        "--reporting-max-id-windows",
        type=int,
        default=defaults.reporting_max_id_windows,
        help="processing budget: ids x windows above this answers the silent-empty result "
        f"(default {defaults.reporting_max_id_windows}; 0: no such budget)",
    )
    parser.add_argument(
        "--reporting-max-id-minutes",
        type=int,
        help="processing budget: ids x range minutes above this answers the silent-empty result",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help=f"inject a fault (repeatable): {FAULT_SPEC_HELP}",
    )
    hooks = parser.add_argument_group("webhook delivery (docs/emulator.md, 'Webhook delivery')")
    hooks.add_argument(
        "--webhook-url",
        metavar="URL",
        help="start with a webhook subscription POSTing events to URL (loopback unless --webhook-allow-remote)",
    )
    hooks.add_argument(
        "--webhook-events",
        default=",".join(DEFAULT_EVENT_TYPES),
        metavar="TYPES",
        help=f"comma-separated event types of that subscription (default {','.join(DEFAULT_EVENT_TYPES)}; "
        f"delivered: {', '.join(DELIVERED_TYPES)})",
    )
    hooks.add_argument("--webhook-api-key", metavar="HEADER=VALUE", help="authenticate with this header")
    hooks.add_argument("--webhook-basic-auth", metavar="USER:PASSWORD", help="authenticate with basic auth")
    hooks.add_argument(
        "--webhook-timeout", type=int, metavar="SECONDS", help="the subscription's http_timeout"
    )
    hooks.add_argument(
        "--webhook-tidy",
        action="store_true",
        help="no revisions, duplicates or shuffling (Butlr's untidiness off)",
    )
    hooks.add_argument(
        "--webhook-allow-remote",
        action="store_true",
        help="allow deliveries to hosts other than localhost / loopback addresses (off: never sent elsewhere)",
    )
    parser.add_argument(
        "--admin",
        action="store_true",
        help="serve the admin API (/_emulator/) even when --host is not a loopback address",
    )
    parser.add_argument(
        "--ready-file", type=Path, help="write the URL to this file once the server is listening"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the URL; no request log")
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
        f"Admin API: {emu.admin_url} (clock, faults, tokens, counters, config, webhooks)"
        if admin_enabled(emu.config, emu.host)
        else "Admin API: off (non-loopback bind; --admin enables it)",
        *_webhook_lines(emu),
        "",
        "Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def _webhook_lines(emu: ButlrEmulator) -> list[str]:
    """The subscriptions made at start (URL without credentials, no secret values)."""
    return [
        f"Webhook {h['id']}: {', '.join(h['event_types'])} -> {h['url']}"
        + (f" ({h['auth']} auth)" if h["auth"] else "")
        for h in emu.deliverer.summary()
    ]


def _login_body(emu: ButlrEmulator) -> dict[str, str]:
    return {
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "audience": emu.audience,
        "grant_type": "client_credentials",
    }


def build(args: argparse.Namespace) -> ButlrEmulator:
    """The emulator the arguments describe (not started); ValueError names a bad argument."""
    clock = EmulatorClock()
    if args.clock:
        clock.set_spec(args.clock, frozen=args.frozen)
    elif args.frozen:
        clock.freeze()
    emu = ButlrEmulator(
        port=args.port,
        host=args.host,
        clock=clock,
        seed=args.seed,
        size=args.size,
        token_lifetime=args.token_lifetime,
        latency=args.latency,
        data_lag_minutes=args.data_lag_minutes,
        rate_limit_per_minute=args.rate_limit_per_minute,
        reporting_max_id_minutes=args.reporting_max_id_minutes,
        reporting_max_id_windows=args.reporting_max_id_windows or None,
        webhook_allow_remote=args.webhook_allow_remote,
        **(TIDY if args.webhook_tidy else {}),
        admin_api=True if args.admin else None,
    )
    for spec in args.fault:
        emu.add_fault(spec)
    if args.webhook_url:
        _subscribe(emu, args)
    return emu


def _pair(text: str, separator: str, flag: str, form: str) -> tuple[str, str]:
    first, sep, second = text.partition(separator)
    if not sep or not first:
        raise ValueError(f"{flag} must look like {form}")  # never echo the value: it may be a secret
    return first, second


def _subscribe(emu: ButlrEmulator, args: argparse.Namespace) -> None:
    """The subscription of ``--webhook-url`` (refused up front when it could never be delivered)."""
    problem = loopback_problem(urlsplit(args.webhook_url))
    if problem is not None and not args.webhook_allow_remote:
        raise ValueError(
            f"--webhook-url {shown_url(args.webhook_url)}: {problem}; the emulator sends to loopback only "
            "unless --webhook-allow-remote is given"
        )
    api_key = basic = None
    if args.webhook_api_key:
        key, value = _pair(args.webhook_api_key, "=", "--webhook-api-key", "HEADER=VALUE")
        api_key = {"key": key, "value": value}
    if args.webhook_basic_auth:
        user, password = _pair(args.webhook_basic_auth, ":", "--webhook-basic-auth", "USER:PASSWORD")
        basic = {"username": user, "password": password}
    events = [e.strip() for e in args.webhook_events.split(",") if e.strip()]
    emu.subscribe(
        args.webhook_url,
        events,
        name="cli",
        api_key=api_key,
        basic_auth=basic,
        http_timeout=args.webhook_timeout,
    )


def _fail(message: str) -> int:
    print(f"python -m airflow_provider_butlr.testing: error: {message}", file=sys.stderr, flush=True)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        emu = build(args)
    except ValueError as exc:
        return _fail(str(exc))
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        emu.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return _fail(
                f"port {args.port} on {args.host} is in use; pick another, or --port 0 for a free one"
            )
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    try:
        print(emu.url if args.quiet else banner(emu), flush=True)
        if args.ready_file is not None:
            tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
            tmp.write_text(emu.url + "\n")
            os.replace(tmp, args.ready_file)  # atomic: readers never see a half-written URL
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
    print("Butlr API emulator stopped.", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
