"""A call as the caller describes it: its URL (only ever the API origin) and its headers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypedDict, Unpack
from urllib.parse import urljoin, urlsplit

from airflow_provider_butlr.client.body import accept_encoding
from airflow_provider_butlr.client.messages import Call
from airflow_provider_butlr.client.scrub import scrub
from airflow_provider_butlr.client.settings import ButlrSettings, origin_of
from airflow_provider_butlr.exceptions import ButlrConfigurationError


def default_headers(payload: Any, settings: ButlrSettings) -> dict[str, str]:
    """Headers of every Butlr request (never anything from the connection's extras).

    ``Accept-Encoding`` names only the codings :mod:`.body` undoes under the size cap: requests and
    httpx would otherwise announce whatever their installed decoders allow (br, zstd).
    """
    from airflow_provider_butlr import __version__

    headers = {
        "Accept": "application/json",
        "Accept-Encoding": accept_encoding(settings.max_response_bytes),
        "User-Agent": f"airflow-provider-butlr/{__version__}",
    }
    if payload is not None:
        headers["Content-Type"] = "application/json"
    return headers


def url_for(settings: ButlrSettings, path: str) -> str:
    """A relative path joined to the base URL; an absolute URL must be on the API origin."""
    parts = urlsplit(path)
    if parts.scheme and parts.netloc:
        if origin_of(path) != settings.origin:
            raise ButlrConfigurationError(
                f"endpoint {scrub(path)!r} is not on the Butlr API host {settings.base_url}; "
                "the bearer token is only sent to the configured host"
            )
        return path
    return urljoin(settings.base_url + "/", path.lstrip("/"))


class CallOptions(TypedDict, total=False):
    """What a caller may add to a request: the body, query parameters, headers, its own timeout."""

    json: Any
    params: Mapping[str, Any] | None
    headers: Mapping[str, str] | None
    timeout: float | None


def make_call(
    settings: ButlrSettings,
    method: str,
    path: str,
    *,
    parse_json: bool = True,
    decode: Callable[[bytes], Any] | None = None,
    **options: Unpack[CallOptions],
) -> Call:
    """Validate and describe one API call (refuses foreign hosts before anything is sent)."""
    url = url_for(settings, path)
    body = options.get("json")
    return Call(
        method=method.upper(),
        url=url,
        endpoint=urlsplit(url).path,
        json=body,
        params=options.get("params"),
        headers={**default_headers(body, settings), **(options.get("headers") or {})},
        timeout=options.get("timeout"),
        parse_json=parse_json,
        decode=decode,
    )
