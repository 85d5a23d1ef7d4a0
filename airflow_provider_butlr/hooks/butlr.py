"""ButlrHook: one Connection, one token (shared process-wide), one reused session, retried requests."""

from __future__ import annotations

import json as jsonlib
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_butlr import CONN_FIELDS, DEFAULT_AUDIENCE, DEFAULT_MAX_RETRIES, UI_FIELD_BEHAVIOUR
from airflow_provider_butlr.auth import (
    TOKEN_CACHE,
    AccessToken,
    error_text,
    headers_for,
    login_request,
    mask_token,
    token_from_login_response,
)
from airflow_provider_butlr.exceptions import (
    ButlrAuthError,
    ButlrConfigurationError,
    ButlrDataError,
    ButlrError,
    ButlrGraphQLError,
)

# Data methods (end of the class) delegate to these pure/streaming modules.
from airflow_provider_butlr.export import (
    ExportStats,
    Fetch,
    iter_export_rows,
    validate_concurrency,
    validate_page_limit,
)
from airflow_provider_butlr.queries import (
    HIVES_QUERY,
    SENSORS_QUERY,
    TAGS_QUERY,
    TOPOLOGY_QUERY,
    Topology,
    unwrap,
)
from airflow_provider_butlr.reporting import (
    DEFAULT_MAX_WINDOWS_PER_REQUEST,
    DEFAULT_PAGE_LIMIT,
    REPORTING_PATH,
    STATS_PATH,
    BatchLimits,
    ExportUnit,
    ReportingQuery,
    Row,
    build_stats_body,
    flatten_stats,
    plan_units,
    split_ids,
)
from airflow_provider_butlr.retry import (
    NO_CONTENT_STATUSES,
    RETRYABLE_STATUSES,
    RetryPolicy,
    TransientDataError,
    TransientHTTPError,
    describe,
    give_up_error,
    parse_retry_after,
    status_error,
)
from airflow_provider_butlr.settings import ButlrSettings, ClientOptions, settings_from_connection
from airflow_provider_butlr.token_store import store_for

if TYPE_CHECKING:  # requests is imported on the first request: DAG files that only build operators skip it
    import requests

GRAPHQL_PATH = "/api/v3/graphql"
TEST_CONNECTION_QUERY = "query ButlrTestConnection { sites { data { id } } }"
TEST_CONNECTION_MAX_RETRIES = 1
TEST_CONNECTION_TIMEOUT = 10.0


class _BearerAuth:
    """Adds the current token at send time, and only for requests to the configured API origin.

    A plain callable (all ``requests`` asks of an ``auth``), not a ``requests.auth.AuthBase``
    subclass, so that importing the hook does not import requests.
    """

    def __init__(self, hook: ButlrHook) -> None:
        self._hook = hook

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(request.url or "")
        if (parts.scheme, parts.netloc.lower()) == self._hook.settings.origin:
            request.headers["Authorization"] = f"Bearer {self._hook.get_token()}"
        else:
            request.headers.pop("Authorization", None)
        return request


class ButlrHook(BaseHook):
    """Talk to the Butlr API with the credentials of an Airflow connection of type ``butlr``.

    :param butlr_conn_id: the connection: host = API base URL, login = client id (or username),
        password = client secret (or password), extras ``audience``, ``auth_type``, ``timeout``,
        ``max_retries``.
    :param timeout: per-request timeout in seconds (overrides the connection's).
    :param max_retries: retries for 429/5xx/network errors (overrides the connection's).
    :param retry_wait_initial: first backoff wait in seconds (doubles each retry, with jitter).
    :param retry_wait_max: longest backoff wait in seconds.
    :param retry_after_cap: longest wait honoured from a ``Retry-After`` header, in seconds.
    """

    conn_name_attr = "butlr_conn_id"
    default_conn_name = "butlr_default"
    conn_type = "butlr"
    hook_name = "Butlr"

    def __init__(
        self,
        butlr_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_wait_initial: float = 0.5,
        retry_wait_max: float = 30.0,
        retry_after_cap: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.butlr_conn_id = butlr_conn_id
        self.options = ClientOptions(
            timeout, max_retries, retry_wait_initial, retry_wait_max, retry_after_cap
        )
        self._session: requests.Session | None = None
        self.last_attempts = 0  # attempts used by the most recent request (for reporting)

    # --- connection and settings -------------------------------------------------------------

    @cached_property
    def settings(self) -> ButlrSettings:
        """The connection, resolved once and validated (raises ButlrConfigurationError)."""
        conn = self.get_connection(self.butlr_conn_id)
        return settings_from_connection(conn)

    @property
    def timeout(self) -> float:
        return self.options.timeout_for(self.settings)

    @cached_property
    def retry_policy(self) -> RetryPolicy:
        return self.options.retry_policy_for(self.settings)

    # --- tokens --------------------------------------------------------------------------------

    def get_token(self) -> str:
        """A valid access token: from the process-wide cache, or a new login."""
        settings = self.settings
        return TOKEN_CACHE.get(
            settings.cache_key, lambda: self._login(settings, self.retry_policy), store=store_for(settings)
        )

    def invalidate_token(self, token: str | None = None) -> None:
        """Forget the cached token (only ``token``, if given and still cached)."""
        TOKEN_CACHE.invalidate(self.settings.cache_key, token, store=store_for(self.settings))

    def _login(
        self, settings: ButlrSettings, policy: RetryPolicy, timeout: float | None = None
    ) -> AccessToken:
        url, body = login_request(settings)
        endpoint = urlsplit(url).path
        session = self.get_conn()

        def attempt() -> AccessToken:
            response = session.post(
                url,
                json=body,
                headers=headers_for(body),
                timeout=timeout or self.timeout,
                verify=settings.verify,
                allow_redirects=False,
            )
            with response:
                return token_from_login_response(
                    settings,
                    status=response.status_code,
                    body=response.text,
                    retry_after_header=response.headers.get("Retry-After"),
                    now=time.time(),
                )

        token = self._with_retries(attempt, "POST", endpoint, policy)
        mask_token(token.value)
        self.log.info("Logged in to Butlr at %s (%s grant).", settings.base_url, settings.auth_type)
        return token

    # --- session and requests ------------------------------------------------------------------

    def get_conn(self) -> requests.Session:
        """The hook's one reused session (TLS verification per the connection, on by default)."""
        if self._session is None:
            import requests

            session = requests.Session()
            session.verify = self.settings.verify
            self._session = session
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> ButlrHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def url_for(self, path: str) -> str:
        """Join a relative path to the base URL; absolute URLs must stay on the API origin."""
        if "://" in path:
            parts = urlsplit(path)
            if (parts.scheme, parts.netloc.lower()) != self.settings.origin:
                raise ButlrConfigurationError(
                    f"endpoint {path!r} is not on the Butlr API host {self.settings.base_url}; "
                    "the bearer token is only sent to the configured host"
                )
            return path
        return urljoin(self.settings.base_url + "/", path.lstrip("/"))

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        check_response: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """Send an authenticated request with retries (429/5xx/network) and one replay after a 401.

        Raises a :class:`ButlrAPIError` subclass for an error status when ``check_response`` is true.
        """
        response = self._send(method, path, json=json, params=params, parse_json=False, **kwargs)[0]
        if check_response:
            self._raise_for_status(response, method.upper(), urlsplit(response.url).path)
        return response

    def request_json(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        policy: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> Any:
        """Like :meth:`request` but returns the parsed JSON body; a malformed body is retried."""
        response, payload = self._send(
            method, path, json=json, params=params, parse_json=True, policy=policy, **kwargs
        )
        self._raise_for_status(response, method.upper(), urlsplit(response.url).path)
        return payload

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        params: dict[str, Any] | None,
        parse_json: bool,
        policy: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> tuple[requests.Response, Any]:
        method = method.upper()
        url = self.url_for(path)
        endpoint = urlsplit(url).path
        auth = _BearerAuth(self)
        timeout = kwargs.pop("timeout", None) or self.timeout
        headers = {**headers_for(json), **kwargs.pop("headers", {})}

        def send_once() -> requests.Response:
            # verify per request: requests lets REQUESTS_CA_BUNDLE override a session's verify
            return self.get_conn().request(
                method,
                url,
                json=json,
                params=params,
                auth=auth,
                timeout=timeout,
                headers=headers,
                verify=self.settings.verify,
                **kwargs,
            )

        def attempt() -> tuple[requests.Response, Any]:
            response = send_once()
            if response.status_code == 401:
                self._drop_token_used_by(response)
                response.close()
                self.log.info(
                    "Butlr %s %s answered 401; logging in again and replaying once.", method, endpoint
                )
                response = send_once()
                if response.status_code == 401:
                    self._drop_token_used_by(response)
                    raise ButlrAuthError(
                        f"Butlr {method} {endpoint} refused the token with HTTP 401 even after a fresh login"
                        f" (2 attempt(s); {error_text(response.text, (self.settings.secret,))})",
                        status=401,
                        method=method,
                        endpoint=endpoint,
                        attempts=2,
                    )
            if response.status_code == 403:  # a token Butlr refuses must not stay cached (no replay)
                self._drop_token_used_by(response)
            if response.status_code in RETRYABLE_STATUSES:
                detail = error_text(response.text, (self.settings.secret,))
                response.close()
                raise TransientHTTPError(
                    response.status_code,
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                    detail=detail,
                )
            if not parse_json or response.status_code >= 400 or response.status_code in NO_CONTENT_STATUSES:
                return response, None  # 204 (e.g. DELETE /api/v1/client/{id}) has no body to parse
            try:
                return response, response.json()
            except ValueError as err:
                raise TransientDataError(f"malformed JSON in a {response.status_code} answer") from err

        return self._with_retries(attempt, method, endpoint, policy or self.retry_policy)

    def _drop_token_used_by(self, response: requests.Response) -> None:
        sent = response.request.headers.get("Authorization", "") if response.request else ""
        self.invalidate_token(sent.removeprefix("Bearer ") or None)

    def _with_retries(self, attempt: Any, method: str, endpoint: str, policy: RetryPolicy) -> Any:
        """Run ``attempt`` under the retry policy; turn a final transient failure into a ButlrError."""
        retrying = policy.retrying(f"{method} {endpoint}")
        try:
            return retrying(attempt)
        except Exception as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            error = give_up_error(
                exc, method=method, endpoint=endpoint, attempts=attempts, max_retries=policy.max_retries
            )
            if error is exc:
                raise
            raise error from exc
        finally:
            self.last_attempts = retrying.statistics.get("attempt_number", 0)

    def _raise_for_status(self, response: requests.Response, method: str, endpoint: str) -> None:
        if response.status_code >= 400:
            detail = error_text(response.text, (self.settings.secret,))
            raise status_error(response.status_code, detail, method=method, endpoint=endpoint)

    # --- GraphQL -------------------------------------------------------------------------------

    def graphql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
        *,
        policy: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Run a GraphQL query; return ``data``. Any ``errors`` entry raises ButlrGraphQLError."""
        body: dict[str, Any] = {"query": query}
        if variables:
            body["variables"] = variables
        if operation_name:
            body["operationName"] = operation_name
        payload = self.request_json("POST", GRAPHQL_PATH, json=body, policy=policy, timeout=timeout)
        errors = payload.get("errors") if isinstance(payload, dict) else None
        if errors and _is_unauthenticated(errors):
            self.invalidate_token()
            self.log.info("Butlr GraphQL answered UNAUTHENTICATED; logging in again and replaying once.")
            payload = self.request_json("POST", GRAPHQL_PATH, json=body, policy=policy, timeout=timeout)
            errors = payload.get("errors") if isinstance(payload, dict) else None
            if errors and _is_unauthenticated(errors):
                self.invalidate_token()
                raise ButlrAuthError(
                    "Butlr GraphQL refused the token (UNAUTHENTICATED) even after a fresh login",
                    status=200,
                    method="POST",
                    endpoint=GRAPHQL_PATH,
                )
        if not isinstance(payload, dict):
            raise ButlrDataError(f"Butlr GraphQL answered a {type(payload).__name__}, not a JSON object")
        if errors:
            raise ButlrGraphQLError(
                "Butlr GraphQL returned errors: " + _summarise_graphql_errors(errors),
                errors=errors,
                data=payload.get("data"),
                method="POST",
                endpoint=GRAPHQL_PATH,
            )
        return payload.get("data")

    # --- connection test -----------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Fresh login plus one tiny read; ``(ok, message)`` with no secret in the message."""
        try:
            settings = self.settings
            quick = RetryPolicy(
                max_retries=min(TEST_CONNECTION_MAX_RETRIES, settings.max_retries), wait_max=2.0
            )
            timeout = min(self.timeout, TEST_CONNECTION_TIMEOUT)
            token = self._login(settings, quick, timeout=timeout)
            TOKEN_CACHE.put(settings.cache_key, token, store=store_for(settings))
            data = self.graphql(TEST_CONNECTION_QUERY, policy=quick, timeout=timeout)
            sites = ((data or {}).get("sites") or {}).get("data") or []
            return True, (
                f"Connected to Butlr at {settings.base_url} ({settings.auth_type} grant); "
                f"{len(sites)} site(s) visible."
            )
        except ButlrError as err:
            return False, str(err)
        except Exception as err:  # the UI must get a message, never a traceback
            return False, f"{type(err).__name__}: {describe(err)}"
        finally:
            self.close()

    # --- connection form (Airflow 3.0/3.1; 3.2+ reads the declarative provider info) ----------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabels, placeholders and hidden fields of the connection form."""
        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields for the legacy form; WTForms is imported here only, never at module level."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import IntegerField, StringField
        from wtforms.validators import NumberRange, Optional, any_of

        def label(name: str) -> Any:
            return lazy_gettext(CONN_FIELDS[name]["label"])

        def description(name: str) -> str:
            return str(CONN_FIELDS[name]["description"])

        return {
            "audience": StringField(
                label("audience"),
                widget=BS3TextFieldWidget(),
                default=DEFAULT_AUDIENCE,
                description=description("audience"),
            ),
            "auth_type": StringField(
                label("auth_type"),
                widget=BS3TextFieldWidget(),
                default="client_credentials",
                # any_of (not AnyOf): Airflow 3.0-3.2 turn exactly this validator into a dropdown.
                validators=[any_of(list(CONN_FIELDS["auth_type"]["schema"]["enum"]))],
                description=description("auth_type"),
            ),
            "timeout": IntegerField(
                label("timeout"),
                widget=BS3TextFieldWidget(),
                default=CONN_FIELDS["timeout"]["schema"]["default"],
                validators=[Optional(), NumberRange(min=1)],
                description=description("timeout"),
            ),
            "max_retries": IntegerField(
                label("max_retries"),
                widget=BS3TextFieldWidget(),
                default=DEFAULT_MAX_RETRIES,
                validators=[Optional(), NumberRange(min=0)],
                description=description("max_retries"),
            ),
        }

    # =========================================================================================
    # Data methods: reporting, stats, assets. Thin: the logic lives in reporting.py (pure),
    # export.py (streaming export engine) and queries.py (GraphQL texts, topology, health rules).
    # =========================================================================================

    def query_reporting(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """One ``POST /api/v3/reporting`` call; the whole answer (``data`` and ``page_info``)."""
        payload = self.request_json("POST", REPORTING_PATH, json=dict(body))
        if not isinstance(payload, dict):
            raise ButlrDataError(f"Butlr reporting answered a {type(payload).__name__}, not a JSON object")
        return payload

    def iter_reporting_rows(
        self,
        measurements: str | Iterable[str],
        *,
        start: Any,
        stop: Any,
        floors: Iterable[str] | None = None,
        rooms: Iterable[str] | None = None,
        zones: Iterable[str] | None = None,
        tags: Iterable[str] | None = None,
        sensors: Iterable[str] | None = None,
        hives: Iterable[str] | None = None,
        every: str = "1h",
        function: str | Iterable[str] = "mean",
        timezone: str = "UTC",
        include_zeros: bool = True,
        calibrated: str | bool | None = None,
        max_ids_per_request: int | None = None,
        max_ids_long_range: int | None = None,
        max_windows_per_request: int = DEFAULT_MAX_WINDOWS_PER_REQUEST,
        max_concurrency: int = 1,
        page_limit: int = DEFAULT_PAGE_LIMIT,
        stats: ExportStats | None = None,
    ) -> Iterator[Row]:
        """Flat rows of a whole export, streamed: ids in batches, long ranges in chunks, every page.

        Arguments are validated before the first request (ButlrConfigurationError naming the
        argument). See :func:`airflow_provider_butlr.export.iter_export_rows` for the guarantees.
        """
        query = ReportingQuery.build(
            measurements,
            start=start,
            stop=stop,
            assets={
                "floors": floors,
                "rooms": rooms,
                "zones": zones,
                "tags": tags,
                "sensors": sensors,
                "hives": hives,
            },
            every=every,
            function=function,
            timezone=timezone,
            include_zeros=include_zeros,
            calibrated=calibrated,
        )
        return self.iter_query_rows(
            query,
            max_ids_per_request=max_ids_per_request,
            max_ids_long_range=max_ids_long_range,
            max_windows_per_request=max_windows_per_request,
            max_concurrency=max_concurrency,
            page_limit=page_limit,
            stats=stats,
        )

    def iter_query_rows(
        self,
        query: ReportingQuery,
        *,
        max_ids_per_request: int | None = None,
        max_ids_long_range: int | None = None,
        max_windows_per_request: int = DEFAULT_MAX_WINDOWS_PER_REQUEST,
        max_concurrency: int = 1,
        page_limit: int = DEFAULT_PAGE_LIMIT,
        stats: ExportStats | None = None,
    ) -> Iterator[Row]:
        """Like :meth:`iter_reporting_rows` for an already validated :class:`ReportingQuery`."""
        units = plan_units(
            query, BatchLimits.from_args(max_ids_per_request, max_ids_long_range), max_windows_per_request
        )
        validate_concurrency(max_concurrency)
        validate_page_limit(page_limit)
        return self._run_export(units, max_concurrency, page_limit, stats)

    def _run_export(
        self, units: list[ExportUnit], max_concurrency: int, page_limit: int, stats: ExportStats | None
    ) -> Iterator[Row]:
        workers: list[ButlrHook] = []
        lock = threading.Lock()

        def fetch_factory() -> Fetch:
            if max_concurrency == 1:
                return self.query_reporting
            worker = self._worker_clone()  # one session per thread; same token cache
            with lock:
                workers.append(worker)
            return worker.query_reporting

        try:
            yield from iter_export_rows(
                units, fetch_factory, max_concurrency=max_concurrency, page_limit=page_limit, stats=stats
            )
        finally:
            for worker in workers:
                worker.close()

    def _worker_clone(self) -> ButlrHook:
        """A hook for another thread: same connection (resolved once) and options, its own session."""
        clone = type(self)(self.butlr_conn_id)
        clone.options = self.options
        clone.__dict__["settings"] = self.settings  # share the cached_property value: no second lookup
        return clone

    def query_stats(
        self,
        measurements: str | Iterable[str],
        items: str | Iterable[str],
        *,
        start: Any,
        stop: Any,
        exclude_days_of_week: str | Iterable[str] | None = None,
        time_ranges: Iterable[Any] | None = None,
        max_items_per_request: int = 30,
    ) -> dict[str, dict[str, float | int | None]]:
        """``POST /api/v4/reporting/stats``: ``{item_id: {measurement: number}}``.

        All items must share one timezone (a Butlr rule); they are sent in batches.
        """
        body = build_stats_body(
            measurements=measurements,
            items=items,
            start=start,
            stop=stop,
            exclude_days_of_week=exclude_days_of_week,
            time_ranges=time_ranges,
        )
        result: dict[str, dict[str, float | int | None]] = {}
        for batch in split_ids(body["items"], max_items_per_request):
            payload = self.request_json("POST", STATS_PATH, json={**body, "items": list(batch)})
            result.update(flatten_stats(payload))
        return result

    def get_topology(self) -> Topology:
        """Sites -> buildings -> floors -> rooms/zones (with timezones, tags, capacities)."""
        return Topology.from_graphql(self.graphql(TOPOLOGY_QUERY))

    def get_sensors(self) -> list[dict[str, Any]]:
        """Every sensor with its health fields (snake_case selection; placeholders included)."""
        return unwrap(self.graphql(SENSORS_QUERY), "sensors")

    def get_hives(self) -> list[dict[str, Any]]:
        """Every hive with its health fields."""
        return unwrap(self.graphql(HIVES_QUERY), "hives")

    def get_tags(self) -> list[dict[str, Any]]:
        """Every tag with the floors, rooms and zones it is applied to."""
        return unwrap(self.graphql(TAGS_QUERY), "tags")


def _is_unauthenticated(errors: list[Any]) -> bool:
    return any(
        isinstance(err, dict) and (err.get("extensions") or {}).get("code") == "UNAUTHENTICATED"
        for err in errors
    )


def _summarise_graphql_errors(errors: list[Any], limit: int = 3) -> str:
    messages = []
    for err in errors[:limit]:
        if isinstance(err, dict):
            code = (err.get("extensions") or {}).get("code")
            path = ".".join(str(p) for p in err.get("path") or [])
            text = str(err.get("message", "")).strip()
            messages.append(
                " ".join(x for x in (f"[{code}]" if code else "", path + ":" if path else "", text) if x)
            )
        else:
            messages.append(jsonlib.dumps(err)[:200])
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(messages) + more
