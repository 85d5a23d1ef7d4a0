"""Issue 25, item 3, without a network: a DNS failure and an unreachable network read as what they are,
in the exception chains requests and httpx build, and a login to such a host gives up in seconds.

(The loopback tests in tests/integration/hostile/test_actionable_errors.py cover a refused connection
end to end; a DNS lookup would leave the machine, so here the chains are built as the libraries do.)
"""

from __future__ import annotations

import errno
import socket

import httpx
import pytest
import requests
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

from airflow_provider_butlr.client.advice import DNS, REFUSED, UNREACHABLE, network_cause
from airflow_provider_butlr.client.retry import RetryPolicy, give_up_error, is_transient, with_retries
from airflow_provider_butlr.exceptions import ButlrAPIError

BASE = "https://api.butlr.invalid"


def requests_dns_error() -> Exception:
    gai = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    resolution = NameResolutionError("api.butlr.invalid", None, gai)  # type: ignore[arg-type]
    resolution.__cause__ = gai
    return requests.exceptions.ConnectionError(MaxRetryError(None, "/api/v2/clients/login", resolution))  # type: ignore[arg-type]


def httpx_error(cause: OSError) -> Exception:
    err = httpx.ConnectError(str(cause))
    err.__cause__ = cause
    return err


def requests_refused() -> Exception:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    new = NewConnectionError(None, "Failed to establish a new connection")  # type: ignore[arg-type]
    new.__cause__ = refused
    return requests.exceptions.ConnectionError(MaxRetryError(None, "/x", new))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (requests_dns_error(), DNS),
        (httpx_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known")), DNS),
        (requests_refused(), REFUSED),
        (httpx_error(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")), REFUSED),
        (httpx_error(OSError(errno.ENETUNREACH, "Network is unreachable")), UNREACHABLE),
        (requests.exceptions.ConnectionError("Remote end closed connection without response"), None),
    ],
    ids=["requests DNS", "httpx DNS", "requests refused", "httpx refused", "unreachable", "dropped"],
)
def test_network_causes_are_recognised_in_both_libraries_chains(exc: Exception, cause: str | None) -> None:
    assert network_cause(exc) == cause
    assert is_transient(exc)


@pytest.mark.parametrize("conn_id", ["butlr_default", ""])
def test_a_dns_failure_is_one_line_naming_host_and_fields(conn_id: str) -> None:
    error = give_up_error(
        requests_dns_error(),
        method="POST",
        endpoint="/api/v2/clients/login",
        attempts=3,
        max_retries=2,
        base_url=BASE,
        conn_id=conn_id,
    )
    text = str(error)
    assert isinstance(error, ButlrAPIError) and "\n" not in text
    assert "the host name api.butlr.invalid does not resolve (DNS failure)" in text, text
    where = "connection butlr_default, fields host and port" if conn_id else "(fields host and port)"
    assert where in text and ("connection butlr_default" in text) == bool(conn_id), text


def test_a_login_to_a_host_that_does_not_resolve_gives_up_after_the_quick_retries() -> None:
    attempts = []

    def attempt() -> None:
        attempts.append(1)
        raise requests_dns_error()

    policy = RetryPolicy(max_retries=5, wait_initial=0.0, wait_max=0.0, unreachable_retries=2)
    with pytest.raises(ButlrAPIError, match=r"after 3 attempt\(s\) \(2 retries allowed\)") as err:
        with_retries(attempt, policy, "POST", "/api/v2/clients/login", BASE, "butlr_default")
    assert len(attempts) == 3 and err.value.__cause__ is None
