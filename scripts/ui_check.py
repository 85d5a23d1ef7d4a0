#!/usr/bin/env python3
"""Check the Butlr connection form in a running Airflow: the UI metadata endpoint, then a real browser.

Started by ``scripts/ui_check.sh``, which runs the emulator, ``airflow api-server`` and Chromium
(remote debugging on loopback) and stops them by PID. This script only talks to them:

1. ``GET /ui/connections/hook_meta`` (what the UI renders the form from; any Airflow 3.x);
2. with ``--cdp-url``, as a user does, and nothing else: logs in, opens Admin -> Connections ->
   Add Connection, picks "Butlr", asserts labels, placeholders, the hidden schema, the visible
   port, the extra fields and the masked secret, fills the form as the README says (API base URL,
   Port, Client ID, Client Secret), saves, clicks the row's Test button and reads the toast:

   - a new connection, right secret: "Test Connection Successful", "Connected to Butlr at ...";
   - Edit -> wrong secret -> Test: "Test Connection Failed" with the provider's reason (HTTP 401)
     and no secret anywhere; Edit -> right secret -> Test: successful again;
   - the README's values for the real API (Port 443) reach the provider's test (pointed at an
     unused loopback port: the provider's "connection failed", not Airflow's "Bad Request");
   - the README's troubleshooting: a connection saved without a port shows what Airflow 3.3.2
     shows (apache/airflow#73298), and Edit -> type the port -> Save makes Test succeed.

   Any Test answered "The host or port to test differs from the stored connection" (the 3.3.2
   bug the Port field avoids) fails the check, except in that one troubleshooting step. No
   request is intercepted or rewritten: Playwright only waits for the test's answer to read it.

Needs ``requests`` (comes with Airflow) and, for the browser part, ``playwright`` (Python package
only; the browser is Debian's Chromium, reached over CDP; no ``playwright install``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

# What an admin must see (issue 8, issue 25); written out here rather than imported from the
# package, so the check is an independent statement of the expected form.
LABELS = {"host": "API base URL", "login": "Client ID", "password": "Client Secret", "port": "Port"}
PLACEHOLDERS = {"host": "https://api.butlr.io", "port": "443 (type it: the Test button needs a port)"}
HIDDEN = ("url_schema",)
SHOWN = ("host", "port", "login", "password")
EXTRA_FIELDS = {
    "audience": ("Audience", "https://butlrauth/"),
    "auth_type": ("Grant type", "client_credentials"),
    "timeout": ("Timeout (s)", 30),
    "max_retries": ("Max retries", 5),
    "max_requests_per_minute": ("Max requests per minute", None),
    "max_rate_limit_wait": ("Max rate-limit wait (s)", 600),
    "redis_conn_id": ("Redis connection id", None),
}
AUTH_TYPES = ["client_credentials", "password"]
CONN_ID = "butlr_ui_check"
CONN_ID_NO_PORT = "butlr_ui_check_no_port"
CONN_ID_REAL_API_PORT = "butlr_ui_check_port_443"
WRONG_SECRET = "wrong-secret-UIcheck-q7Zr4W"
# The 3.3.2 UI sends ``port: Number(null) == 0`` for a connection saved without a port and the API
# refuses it with this (apache/airflow#73298, fixed in the API after 3.3.2); the UI shows only
# "Bad Request". A stored port avoids it: it must never come back for a connection with a port.
PORT_BUG = "host or port to test differs from the stored connection"
TOAST_SUCCESS_TITLE = "Test Connection Successful"
TOAST_FAILURE_TITLE = "Test Connection Failed"
TIMEOUT_MS = 30_000


class UICheckError(AssertionError):
    """A check of the rendered form failed."""


def check(condition: bool, what: str) -> None:
    """Print ``ok <what>`` or raise with ``what``."""
    if not condition:
        raise UICheckError(what)
    print(f"ok  {what}")


def wait_until_up(url: str, what: str, seconds: float = 180.0) -> None:
    """Poll ``url`` until it answers 200 (the api-server needs ~10-25 s to start)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                print(f"ok  {what} is up ({url})")
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise UICheckError(f"{what} did not answer at {url} within {seconds:.0f} s")
        time.sleep(0.5)


def admin_password(airflow_home: Path) -> str:
    """The simple auth manager's generated ``admin`` password."""
    passwords = json.loads((airflow_home / "simple_auth_manager_passwords.json.generated").read_text())
    return str(passwords["admin"])


# --- 1. the metadata endpoint --------------------------------------------------------------------


def api_token(base_url: str, password: str) -> str:
    response = requests.post(
        f"{base_url}/auth/token", json={"username": "admin", "password": password}, timeout=30
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def check_hook_meta(base_url: str, token: str) -> None:
    """The form description the UI fetches: ``GET /ui/connections/hook_meta``."""
    response = requests.get(
        f"{base_url}/ui/connections/hook_meta", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    response.raise_for_status()
    metas = [m for m in response.json() if m.get("connection_type") == "butlr"]
    check(len(metas) == 1, "hook_meta lists the connection type 'butlr' once")
    meta = metas[0]
    check(meta.get("hook_name") == "Butlr", "hook_meta: hook name 'Butlr'")
    standard = meta.get("standard_fields") or {}
    for field, label in LABELS.items():
        check((standard.get(field) or {}).get("title") == label, f"hook_meta: {field} is labelled {label!r}")
    for field, placeholder in PLACEHOLDERS.items():
        got = (standard.get(field) or {}).get("placeholder")
        check(got == placeholder, f"hook_meta: {field} placeholder {placeholder!r} (got {got!r})")
    for field in HIDDEN:
        check((standard.get(field) or {}).get("hidden") is True, f"hook_meta: {field} is hidden")
    for field in SHOWN:
        check((standard.get(field) or {}).get("hidden") is not True, f"hook_meta: {field} is shown")
    extra = meta.get("extra_fields") or {}
    check(set(extra) == set(EXTRA_FIELDS), f"hook_meta: extra fields {sorted(EXTRA_FIELDS)}")
    for name, (label, default) in EXTRA_FIELDS.items():
        field = extra[name]
        check(field["schema"].get("title") == label, f"hook_meta: {name} is labelled {label!r}")
        check(field.get("value") == default, f"hook_meta: {name} defaults to {default!r}")
    enum = extra["auth_type"]["schema"].get("enum")
    check(enum == AUTH_TYPES, f"hook_meta: auth_type is a choice of {AUTH_TYPES} (got {enum})")


# --- 2. the browser ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Toast:
    """What a user sees after pressing Test, and (for diagnosis only) what the API answered."""

    kind: str  # data-type: success or error
    title: str
    description: str
    api_status: int
    api_body: str

    def __str__(self) -> str:
        return f"{self.kind} toast {self.title!r}: {self.description!r} (API: HTTP {self.api_status})"


def log_in(page: Page, base_url: str, password: str) -> None:
    page.goto(f"{base_url}/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/", timeout=TIMEOUT_MS)
    print("ok  logged in as admin (simple auth manager)")


def open_connections(page: Page) -> None:
    page.get_by_role("button", name="Admin").click()
    page.get_by_role("menuitem", name="Connections").click()
    page.get_by_role("button", name="Add Connection").wait_for()


def open_add_connection(page: Page, conn_id: str) -> Locator:
    """Connections -> Add Connection, Connection ID and type Butlr; returns the dialog."""
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    dialog.get_by_label("Connection ID").fill(conn_id)
    dialog.get_by_label("Connection Type").fill("Butlr")
    page.get_by_role("option", name="Butlr", exact=True).click()
    dialog.get_by_label(LABELS["host"]).wait_for()
    return dialog


def open_section(dialog: Locator, name: str) -> None:
    trigger = dialog.get_by_role("button", name=name, exact=True)
    if trigger.get_attribute("aria-expanded") != "true":
        trigger.click()
    dialog.page.wait_for_timeout(300)  # the accordion animates


def check_standard_fields(dialog: Locator) -> None:
    open_section(dialog, "Standard Fields")
    for field, label in LABELS.items():
        box = dialog.get_by_label(label, exact=True)
        check(box.get_attribute("name") == field, f"form: the {field} field is labelled {label!r}")
    port = dialog.get_by_label(LABELS["port"], exact=True)
    check(port.get_attribute("type") == "number", "form: the port is a number field")
    check(port.input_value() == "", "form: the port starts empty (Airflow has no default for it)")
    for field, placeholder in PLACEHOLDERS.items():
        box = dialog.locator(f"input[name={field}]")
        check(box.get_attribute("placeholder") == placeholder, f"form: {field} placeholder {placeholder!r}")
    present = dialog.locator("input[name=schema]").count() + dialog.get_by_text("Schema", exact=True).count()
    check(present == 0, "form: the schema field is hidden")
    secret = dialog.get_by_label(LABELS["password"], exact=True)
    check(secret.get_attribute("type") == "password", "form: the client secret is masked (type=password)")


def check_extra_fields(page: Page, dialog: Locator) -> None:
    open_section(dialog, "Extra Fields")
    # Airflow 3.3.2 renders this label with a ``for`` that does not match the input's id: find by name.
    check(dialog.get_by_text("Audience", exact=True).is_visible(), "form: an 'Audience' field is shown")
    audience = dialog.locator("input[name=element_audience]")
    check(audience.input_value() == "https://butlrauth/", "form: Audience defaults to https://butlrauth/")
    grant = dialog.locator("input[name=element_auth_type]")
    check(grant.input_value() == "client_credentials", "form: Grant type defaults to client_credentials")
    dialog.get_by_label("Grant type").click()
    options = [o.strip() for o in page.get_by_role("option").all_inner_texts()]
    page.get_by_role("option", name="client_credentials", exact=True).click()  # Escape closes the dialog
    check(options == AUTH_TYPES, f"form: Grant type is a choice of {AUTH_TYPES} (got {options})")
    numbers = (
        ("Timeout (s)", "30"),
        ("Max retries", "5"),
        ("Max requests per minute", ""),
        ("Max rate-limit wait (s)", "600"),
    )
    for label, value in numbers:
        box = dialog.get_by_label(label)
        check(box.get_attribute("role") == "spinbutton", f"form: {label} is a number field")
        check(box.input_value() == value, f"form: {label} defaults to {value}")
    redis = dialog.locator("input[name=element_redis_conn_id]")  # a text field: found by name, as Audience
    check(redis.input_value() == "", "form: Redis connection id is shown, empty")


def fill_standard_fields(
    dialog: Locator,
    *,
    host: str | None = None,
    port: int | None = None,
    client_id: str | None = None,
    secret: str | None = None,
) -> None:
    """Type into the standard fields a user fills; ``None`` leaves a field as it is."""
    open_section(dialog, "Standard Fields")
    values = {
        LABELS["host"]: host,
        LABELS["port"]: port,
        LABELS["login"]: client_id,
        LABELS["password"]: secret,
    }
    for label, value in values.items():
        if value is not None:
            dialog.get_by_label(label, exact=True).fill(str(value))


def save(page: Page, dialog: Locator, conn_id: str) -> None:
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="hidden", timeout=TIMEOUT_MS)
    connection_row(page, conn_id).wait_for()


def connection_row(page: Page, conn_id: str) -> Locator:
    cell = page.get_by_role("cell", name=conn_id, exact=True)
    return page.get_by_role("row").filter(has=cell)


def edit_connection(page: Page, conn_id: str, **fields: Any) -> None:
    """The row's Edit button, then :func:`fill_standard_fields` and Save."""
    connection_row(page, conn_id).get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    fill_standard_fields(dialog, **fields)
    save(page, dialog, conn_id)


def dismiss_toasts(page: Page) -> None:
    for close in page.locator("[data-scope=toast][data-part=close-trigger]").all():
        if close.is_visible():
            close.click()
    page.locator("[data-scope=toast][data-part=root]").first.wait_for(state="detached", timeout=TIMEOUT_MS)


def press_test(page: Page, conn_id: str) -> Toast:
    """Click the row's Test button as a user does and read the toast it brings up.

    ``expect_response`` only waits for the answer (nothing is intercepted or changed), so that a
    failure can say what the API answered behind the toast.
    """
    dismiss_toasts(page)
    with page.expect_response("**/api/v2/connections/test", timeout=TIMEOUT_MS) as answer:
        connection_row(page, conn_id).get_by_role("button", name="Test Connection").click()
    response = answer.value
    toast = page.locator("[data-scope=toast][data-part=root]").first
    toast.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_timeout(600)  # let the toast finish sliding in before a screenshot
    shown = Toast(
        kind=toast.get_attribute("data-type") or "",
        title=toast.locator("[data-part=title]").inner_text().strip(),
        description=toast.locator("[data-part=description]").inner_text().strip(),
        api_status=response.status,
        api_body=response.text(),
    )
    print(f"    {conn_id}: {shown}")
    return shown


def no_port_bug(toast: Toast) -> None:
    check(
        PORT_BUG not in toast.api_body,
        f"Airflow did not refuse the test as '{PORT_BUG}' (apache/airflow#73298)",
    )


def expect_success(toast: Toast, base_url: str) -> None:
    no_port_bug(toast)
    check(toast.kind == "success", "the toast is a success")
    check(toast.title == TOAST_SUCCESS_TITLE, f"its title is {TOAST_SUCCESS_TITLE!r}")
    check(
        toast.description.startswith(f"Connected to Butlr at {base_url} "),
        f"it says 'Connected to Butlr at {base_url} ...'",
    )


def expect_provider_failure(toast: Toast, reason: str, secrets: tuple[str, ...]) -> None:
    """An error toast with the provider's message (not Airflow's bare 'Bad Request')."""
    no_port_bug(toast)
    check(toast.kind == "error", "the toast is an error")
    check(toast.title == TOAST_FAILURE_TITLE, f"its title is {TOAST_FAILURE_TITLE!r}")
    check(toast.api_status == 200, "Airflow ran the provider's test (HTTP 200 with status false)")
    check(bool(re.search(reason, toast.description, re.I)), f"it says why: /{reason}/")
    check(
        not any(s in toast.description or s in toast.api_body for s in secrets), "the message has no secret"
    )


def run_browser(args: argparse.Namespace, password: str) -> None:
    from playwright.sync_api import sync_playwright

    shots: Path = args.screenshots
    prefix = f"airflow-{args.airflow_version}-" if args.airflow_version else ""
    emulator = urlsplit(args.emulator_url)
    emulator_port = emulator.port
    if emulator_port is None:
        raise UICheckError(f"the emulator URL {args.emulator_url} names no port")
    secrets = (args.client_secret, WRONG_SECRET)
    wait_until_up(f"{args.cdp_url}/json/version", "Chromium's remote debugging endpoint")
    with sync_playwright() as playwright:
        browser = playwright.chromium.connect_over_cdp(args.cdp_url, timeout=TIMEOUT_MS)
        context = browser.new_context(viewport={"width": 1280, "height": 1500})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        try:
            log_in(page, args.airflow_url, password)
            open_connections(page)
            dialog = open_add_connection(page, CONN_ID)
            print("ok  connection type 'Butlr' is offered and selected")
            check_standard_fields(dialog)
            shoot(dialog, shots / f"{prefix}connection-form.png")
            if args.docs_screenshot:
                shoot(dialog, args.docs_screenshot)
            check_extra_fields(page, dialog)
            shoot(dialog, shots / f"{prefix}connection-form-extra-fields.png")

            print("--- a new connection, filled in as the README says, right secret")
            fill_standard_fields(
                dialog,
                host=args.emulator_url,
                port=emulator_port,
                client_id=args.client_id,
                secret=args.client_secret,
            )
            save(page, dialog, CONN_ID)
            expect_success(press_test(page, CONN_ID), args.emulator_url)
            shoot(page, shots / f"{prefix}test-success.png")

            print("--- Edit -> a wrong secret -> Test")
            edit_connection(page, CONN_ID, secret=WRONG_SECRET)
            expect_provider_failure(
                press_test(page, CONN_ID), r"Butlr login refused.*\bHTTP 401\b.*client secret", secrets
            )
            check(WRONG_SECRET not in page.content(), "the page has no secret")
            shoot(page, shots / f"{prefix}test-failure.png")

            print("--- Edit -> the right secret again -> Test")
            edit_connection(page, CONN_ID, secret=args.client_secret)
            expect_success(press_test(page, CONN_ID), args.emulator_url)

            print("--- the README's values for the real API (Port 443), on an unused loopback port")
            dialog = open_add_connection(page, CONN_ID_REAL_API_PORT)
            fill_standard_fields(
                dialog,
                host="https://localhost",
                port=443,
                client_id=args.client_id,
                secret=args.client_secret,
            )
            save(page, dialog, CONN_ID_REAL_API_PORT)
            expect_provider_failure(
                press_test(page, CONN_ID_REAL_API_PORT),
                r"\bat https://localhost failed\b.*connection failed",
                secrets,
            )

            check_troubleshooting(page, args, emulator_port, shots / f"{prefix}test-without-port.png")
            check(not any(s in page.content() for s in secrets), "the page has no secret")
        except Exception:
            shoot(page, shots / f"{prefix}error.png")
            raise
        finally:
            context.close()


def check_troubleshooting(page: Page, args: argparse.Namespace, emulator_port: int, shot: Path) -> None:
    """A connection saved without a port (before this form showed one, or Port left empty)."""
    print("--- troubleshooting: a connection saved without a port, then Edit -> Port -> Save")
    dialog = open_add_connection(page, CONN_ID_NO_PORT)
    fill_standard_fields(dialog, host=args.emulator_url, client_id=args.client_id, secret=args.client_secret)
    save(page, dialog, CONN_ID_NO_PORT)
    toast = press_test(page, CONN_ID_NO_PORT)
    shoot(page, shot)
    if args.airflow_version == "3.3.2":
        # What README's troubleshooting describes; if a later pin changes it, so must the README.
        check(
            (toast.kind, toast.title, toast.description) == ("error", TOAST_FAILURE_TITLE, "Bad Request")
            and PORT_BUG in toast.api_body,
            "Airflow 3.3.2 without a port: 'Test Connection Failed' / 'Bad Request' (as the README says)",
        )
    else:
        print(f"note: without a port, Airflow {args.airflow_version or '?'} shows: {toast}")
    edit_connection(page, CONN_ID_NO_PORT, port=emulator_port)
    expect_success(press_test(page, CONN_ID_NO_PORT), args.emulator_url)


def shoot(target: Page | Locator, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=str(path))
    print(f"screenshot: {path}")


def check_server_log(path: Path | None, secrets: tuple[str, ...]) -> None:
    if path is not None and path.exists():
        text = path.read_text(errors="replace")
        check(not any(s in text for s in secrets), f"the api-server log has no secret ({path})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--airflow-url", required=True, help="e.g. http://127.0.0.1:28080")
    parser.add_argument("--airflow-home", type=Path, required=True)
    parser.add_argument("--airflow-version", default="", help="used in screenshot names")
    parser.add_argument("--emulator-url", required=True)
    parser.add_argument("--client-id", default="emulator-client-id")
    parser.add_argument("--client-secret", default="emulator-client-secret-do-not-use")
    parser.add_argument("--cdp-url", help="Chromium's remote debugging URL; without it, no browser part")
    parser.add_argument("--screenshots", type=Path, default=Path("ui-screenshots"))
    parser.add_argument("--docs-screenshot", type=Path, help="also save the form screenshot here")
    parser.add_argument("--server-log", type=Path, help="api-server log to search for the secret")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wait_until_up(f"{args.airflow_url}/api/v2/monitor/health", "the Airflow api-server")
    password = admin_password(args.airflow_home)
    steps: list[tuple[str, Callable[[], None]]] = [
        (
            "UI metadata endpoint",
            lambda: check_hook_meta(args.airflow_url, api_token(args.airflow_url, password)),
        )
    ]
    if args.cdp_url:
        steps.append(("browser", lambda: run_browser(args, password)))
        steps.append(
            ("api-server log", lambda: check_server_log(args.server_log, (WRONG_SECRET, args.client_secret)))
        )
    for name, step in steps:
        print(f"--- {name}")
        try:
            step()
        except UICheckError as err:
            print(f"FAIL {err}", file=sys.stderr)
            return 1
    print("UI check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
