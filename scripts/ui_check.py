#!/usr/bin/env python3
"""Check the Butlr connection form in a running Airflow: the UI metadata endpoint, then a real browser.

Started by ``scripts/ui_check.sh``, which runs the emulator, ``airflow api-server`` and Chromium
(remote debugging on loopback) and stops them by PID. This script only talks to them:

1. ``GET /ui/connections/hook_meta`` (what the UI renders the form from; any Airflow 3.x);
2. with ``--cdp-url``: logs in, opens Admin -> Connections -> Add Connection, picks "Butlr",
   asserts labels, placeholder, hidden fields, extra fields and the masked secret, saves the
   connection, presses Test (success), changes the secret, presses Test (failure without the
   secret in the message) and saves screenshots.

Needs ``requests`` (comes with Airflow) and, for the browser part, ``playwright`` (Python package
only; the browser is Debian's Chromium, reached over CDP; no ``playwright install``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Request, Route

# What an admin must see (issue 8); written out here rather than imported from the package, so the
# check is an independent statement of the expected form.
LABELS = {"host": "API base URL", "login": "Client ID", "password": "Client Secret"}
HOST_PLACEHOLDER = "https://api.butlr.io"
HIDDEN = ("url_schema", "port")
EXTRA_FIELDS = {
    "audience": ("Audience", "https://butlrauth/"),
    "auth_type": ("Grant type", "client_credentials"),
    "timeout": ("Timeout (s)", 30),
    "max_retries": ("Max retries", 5),
    "max_requests_per_minute": ("Max requests per minute", None),
}
AUTH_TYPES = ["client_credentials", "password"]
CONN_ID = "butlr_ui_check"
WRONG_SECRET = "wrong-secret-UIcheck-q7Zr4W"
# apache/airflow#73298: the 3.3.2 UI tests a saved connection with ``port: Number(null) == 0`` and the
# API answers 400 for a connection without a port. Fixed upstream in the API after 3.3.2.
PORT_ZERO_BUG = "host or port to test differs from the stored connection"
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
    host = standard.get("host") or {}
    check(host.get("placeholder") == HOST_PLACEHOLDER, f"hook_meta: host placeholder {HOST_PLACEHOLDER}")
    for field in HIDDEN:
        check((standard.get(field) or {}).get("hidden") is True, f"hook_meta: {field} is hidden")
    extra = meta.get("extra_fields") or {}
    check(set(extra) == set(EXTRA_FIELDS), f"hook_meta: extra fields {sorted(EXTRA_FIELDS)}")
    for name, (label, default) in EXTRA_FIELDS.items():
        field = extra[name]
        check(field["schema"].get("title") == label, f"hook_meta: {name} is labelled {label!r}")
        check(field.get("value") == default, f"hook_meta: {name} defaults to {default!r}")
    enum = extra["auth_type"]["schema"].get("enum")
    check(enum == AUTH_TYPES, f"hook_meta: auth_type is a choice of {AUTH_TYPES} (got {enum})")


# --- 2. the browser ------------------------------------------------------------------------------


def log_in(page: Page, base_url: str, password: str) -> None:
    page.goto(f"{base_url}/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/", timeout=TIMEOUT_MS)
    print("ok  logged in as admin (simple auth manager)")


def open_add_connection(page: Page) -> Locator:
    """Admin -> Connections -> Add Connection; returns the dialog."""
    page.get_by_role("button", name="Admin").click()
    page.get_by_role("menuitem", name="Connections").click()
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    return dialog


def choose_connection_type(page: Page, dialog: Locator) -> None:
    dialog.get_by_label("Connection Type").fill("Butlr")
    page.get_by_role("option", name="Butlr", exact=True).click()
    dialog.get_by_label(LABELS["host"]).wait_for()
    print("ok  connection type 'Butlr' is offered and selected")


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
    host = dialog.get_by_label(LABELS["host"], exact=True)
    check(host.get_attribute("placeholder") == HOST_PLACEHOLDER, f"form: host placeholder {HOST_PLACEHOLDER}")
    for name, label in (("schema", "Schema"), ("port", "Port")):
        present = (
            dialog.locator(f"input[name={name}]").count() + dialog.get_by_text(label, exact=True).count()
        )
        check(present == 0, f"form: the {name} field is hidden")
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
    for label, value in (("Timeout (s)", "30"), ("Max retries", "5"), ("Max requests per minute", "")):
        box = dialog.get_by_label(label)
        check(box.get_attribute("role") == "spinbutton", f"form: {label} is a number field")
        check(box.input_value() == value, f"form: {label} defaults to {value}")


def fill_credentials(dialog: Locator, host: str, client_id: str, secret: str) -> None:
    open_section(dialog, "Standard Fields")
    dialog.get_by_label(LABELS["host"], exact=True).fill(host)
    dialog.get_by_label(LABELS["login"], exact=True).fill(client_id)
    dialog.get_by_label(LABELS["password"], exact=True).fill(secret)


def save(page: Page, dialog: Locator) -> None:
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="hidden", timeout=TIMEOUT_MS)
    page.get_by_role("row").filter(has_text=CONN_ID).wait_for()


def dismiss_toasts(page: Page) -> None:
    for close in page.locator("[data-scope=toast][data-part=close-trigger]").all():
        if close.is_visible():
            close.click()
    page.locator("[data-scope=toast][data-part=root]").first.wait_for(state="detached", timeout=TIMEOUT_MS)


@contextmanager
def port_zero_workaround(page: Page) -> Iterator[list[int]]:
    """Send ``port: null`` instead of ``0`` in the test request (the server-side fix of #73298)."""
    rewritten: list[int] = []

    def handle(route: Route, request: Request) -> None:
        body = json.loads(request.post_data or "{}")
        if body.get("port") == 0:
            body["port"] = None
            rewritten.append(1)
        route.continue_(post_data=json.dumps(body))

    page.route("**/api/v2/connections/test", handle)
    try:
        yield rewritten
    finally:
        page.unroute("**/api/v2/connections/test", handle)


def press_test(page: Page) -> tuple[dict[str, Any], Locator]:
    """Press the row's Test button; returns the API answer and the toast the UI shows."""
    dismiss_toasts(page)
    row = page.get_by_role("row").filter(has_text=CONN_ID)
    with page.expect_response("**/api/v2/connections/test", timeout=TIMEOUT_MS) as answer:
        row.get_by_role("button", name="Test Connection").click()
    response = answer.value
    body = response.json()
    toast = page.locator("[data-scope=toast][data-part=root]").first
    toast.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_timeout(600)  # let the toast finish sliding in before a screenshot
    return {"status_code": response.status, **body}, toast


def test_connection(page: Page) -> tuple[dict[str, Any], Locator]:
    """Press Test; on the Airflow 3.3.2 port bug, press it again with the workaround."""
    result, toast = press_test(page)
    if result["status_code"] == 400 and PORT_ZERO_BUG in str(result.get("detail", "")):
        print(
            "note: Airflow answered 400 'host or port ... differs' for a connection without a port "
            "(UI sends port 0: apache/airflow#73298); pressing Test again with port null"
        )
        with port_zero_workaround(page):
            result, toast = press_test(page)
    return result, toast


def edit_secret(page: Page, secret: str) -> None:
    page.get_by_role("row").filter(has_text=CONN_ID).get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    open_section(dialog, "Standard Fields")
    dialog.get_by_label(LABELS["password"], exact=True).fill(secret)
    save(page, dialog)


def shoot(target: Page | Locator, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=str(path))
    print(f"screenshot: {path}")


def run_browser(args: argparse.Namespace, password: str) -> None:
    from playwright.sync_api import sync_playwright

    shots: Path = args.screenshots
    prefix = f"airflow-{args.airflow_version}-" if args.airflow_version else ""
    wait_until_up(f"{args.cdp_url}/json/version", "Chromium's remote debugging endpoint")
    with sync_playwright() as playwright:
        browser = playwright.chromium.connect_over_cdp(args.cdp_url, timeout=TIMEOUT_MS)
        context = browser.new_context(viewport={"width": 1280, "height": 1500})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        try:
            log_in(page, args.airflow_url, password)
            dialog = open_add_connection(page)
            dialog.get_by_label("Connection ID").fill(CONN_ID)
            choose_connection_type(page, dialog)
            check_standard_fields(dialog)
            shoot(dialog, shots / f"{prefix}connection-form.png")
            if args.docs_screenshot:
                shoot(dialog, args.docs_screenshot)
            check_extra_fields(page, dialog)
            shoot(dialog, shots / f"{prefix}connection-form-extra-fields.png")
            fill_credentials(dialog, args.emulator_url, args.client_id, args.client_secret)
            save(page, dialog)

            result, toast = test_connection(page)
            text = toast.inner_text()
            check(
                result.get("status") is True, f"Test with the right secret succeeds: {result.get('message')}"
            )
            check(toast.get_attribute("data-type") == "success", "the UI shows 'Test Connection Successful'")
            check("Connected to Butlr" in text, "the success message names Butlr")
            shoot(page, shots / f"{prefix}test-success.png")

            edit_secret(page, WRONG_SECRET)
            result, toast = test_connection(page)
            text = toast.inner_text()
            check(result.get("status") is False, f"Test with a wrong secret fails: {result.get('message')}")
            check(toast.get_attribute("data-type") == "error", "the UI shows 'Test Connection Failed'")
            check(bool(re.search(r"\b401\b|unauthori[sz]ed|denied|invalid", text, re.I)), "it says why")
            check(WRONG_SECRET not in text and WRONG_SECRET not in str(result), "the message has no secret")
            check(WRONG_SECRET not in page.content(), "the page has no secret")
            shoot(page, shots / f"{prefix}test-failure.png")
        except Exception:
            shoot(page, shots / f"{prefix}error.png")
            raise
        finally:
            context.close()


def check_server_log(path: Path | None) -> None:
    if path is not None and path.exists():
        check(
            WRONG_SECRET not in path.read_text(errors="replace"), f"the api-server log has no secret ({path})"
        )


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
        steps.append(("api-server log", lambda: check_server_log(args.server_log)))
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
