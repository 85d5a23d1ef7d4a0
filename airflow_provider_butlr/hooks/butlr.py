"""ButlrHook: one Connection, one token (shared process-wide), one reused session, retried requests.

The hook is the synchronous driver of the exchange (:mod:`airflow_provider_butlr.client.flow`): it
supplies tokens and moves bytes with ``requests``; every rule about answers lives in the exchange.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, Unpack

from airflow_provider_butlr.client.body import BodyReader
from airflow_provider_butlr.client.calls import CallOptions, make_call, url_for
from airflow_provider_butlr.client.flow import authorised_flow, drive, login_endpoint, login_flow
from airflow_provider_butlr.client.graphql import GRAPHQL_PATH, graphql_body, graphql_data
from airflow_provider_butlr.client.limits.redis_backend import RedisConfig
from airflow_provider_butlr.client.messages import NEED_TOKEN, Answer, DropToken, Outcome, Outgoing, Step
from airflow_provider_butlr.client.ratelimit import limiter, pace_after
from airflow_provider_butlr.client.retry import RetryPolicy, describe, with_retries
from airflow_provider_butlr.client.scrub import redact_secret_fields, scrub_json
from airflow_provider_butlr.client.settings import ButlrSettings, origin_of, settings_from_connection
from airflow_provider_butlr.client.tokens.cache import TOKEN_CACHE, mask_token
from airflow_provider_butlr.client.tokens.model import AccessToken
from airflow_provider_butlr.client.tokens.stores import TokenStore, store_for
from airflow_provider_butlr.exceptions import ButlrDataError, ButlrError
from airflow_provider_butlr.hooks.base import ButlrBaseHook, task_deadline
from airflow_provider_butlr.hooks.connection_form import connection_form_widgets, ui_field_behaviour
from airflow_provider_butlr.hooks.webhooks import ButlrWebhooksMixin
from airflow_provider_butlr.polling.answers import Verdict
from airflow_provider_butlr.polling.plans import PollPlan, PollRequest, poll_flow
from airflow_provider_butlr.reporting.answer import ReportingAnswer, decode_reporting_answer
from airflow_provider_butlr.reporting.bodies import build_stats_body
from airflow_provider_butlr.reporting.catalogue import REPORTING_PATH, STATS_PATH
from airflow_provider_butlr.reporting.health import HIVES_QUERY, SENSORS_QUERY
from airflow_provider_butlr.reporting.planning import split_ids
from airflow_provider_butlr.reporting.rows import flatten_stats
from airflow_provider_butlr.reporting.topology import TAGS_QUERY, TOPOLOGY_QUERY, Topology, unwrap

if TYPE_CHECKING:  # requests is imported on the first request: DAG files that only build operators skip it
    import requests

TEST_CONNECTION_QUERY = "query ButlrTestConnection { sites { data { id } } }"
TEST_CONNECTION_MAX_RETRIES = 1
TEST_CONNECTION_TIMEOUT = 10.0


class BearerAuth:
    """The session's ``auth`` for callers of :meth:`ButlrHook.get_conn`: the current token, sent only
    to the configured API origin (any other host gets no ``Authorization`` header).

    A plain callable (all ``requests`` asks of an ``auth``), so importing the hook does not import requests.
    """

    def __init__(self, hook: ButlrHook) -> None:
        self._hook = hook

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if origin_of(request.url or "") == self._hook.settings.origin:
            request.headers["Authorization"] = f"Bearer {self._hook.get_token()}"
        else:
            request.headers.pop("Authorization", None)
        return request


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """The hook's own requests carry the token the exchange chose: the session's auth stays out."""
    return request


class ButlrHook(ButlrWebhooksMixin, ButlrBaseHook):
    """Talk to the Butlr API with the credentials of an Airflow connection of type ``butlr``.

    See :class:`~airflow_provider_butlr.hooks.base.ButlrBaseHook` for the parameters.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session: requests.Session | None = None

    # --- the connection form of Airflow 3.0/3.1 (read from this class's own __dict__) -------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabels, placeholders and hidden fields of the connection form."""
        return ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields for the legacy form; WTForms is imported there only, never at module level."""
        return connection_form_widgets()

    # --- connection and settings -------------------------------------------------------------

    @cached_property
    def settings(self) -> ButlrSettings:
        """The connection, resolved once and validated (raises ButlrConfigurationError)."""
        return settings_from_connection(self.get_butlr_connection(), self.butlr_conn_id)

    @cached_property
    def shared_backend(self) -> RedisConfig | None:
        """The Redis of the connection's ``redis_conn_id`` (None without it), resolved once."""
        return self.redis_config(self.settings)

    @cached_property
    def token_store(self) -> TokenStore | None:
        """Where tokens are shared beyond this process (the connection's ``token_cache``)."""
        return store_for(self.settings, self.shared_backend)

    @property
    def timeout(self) -> float:
        return self.options.timeout_for(self.settings)

    @cached_property
    def retry_policy(self) -> RetryPolicy:
        return self.options.retry_policy_for(self.settings, task_deadline())

    def for_worker(self) -> ButlrHook:
        """A hook for another thread: same connection (resolved once) and options, its own session."""
        worker = type(self)(self.butlr_conn_id)
        worker.options = self.options
        worker.settings = self.settings  # fills the cached property: no second lookup
        worker.shared_backend = self.shared_backend
        worker.retry_policy = self.retry_policy  # the task's deadline, read in the task's thread
        return worker

    # --- tokens --------------------------------------------------------------------------------

    def get_token(self) -> str:
        """A valid access token: from the process-wide cache, or a new login."""
        settings = self.settings
        return TOKEN_CACHE.get(
            settings.cache_key, lambda: self._login(settings, self.retry_policy), store=self.token_store
        )

    def invalidate_token(self, token: str | None = None) -> None:
        """Forget the cached token (only ``token``, if given and still cached)."""
        TOKEN_CACHE.invalidate(self.settings.cache_key, token, store=self.token_store)

    def _login(
        self, settings: ButlrSettings, policy: RetryPolicy, timeout: float | None = None
    ) -> AccessToken:
        flow_timeout = timeout or self.timeout
        token: AccessToken = with_retries(
            lambda: drive(login_flow(settings, time.time, flow_timeout), self._perform),
            self.options.login_policy(settings, policy),
            "POST",
            login_endpoint(settings),
            settings.base_url,
            settings.conn_id,
        )
        mask_token(token.value)
        self.log.info("Logged in to Butlr at %s (%s grant).", settings.base_url, settings.auth_type)
        return token

    # --- session and transport -------------------------------------------------------------------

    def get_conn(self) -> requests.Session:
        """The hook's one reused session. Its ``auth`` attaches the bearer token to requests for the
        API origin only, so callers may use it directly (``hook.get_conn().get(hook.url_for(path))``)."""
        if self._session is None:
            import requests

            from airflow_provider_butlr.client.deadline import DeadlineAdapter

            session = requests.Session()
            session.verify = self.settings.verify
            session.auth = BearerAuth(self)
            for prefix in ("https://", "http://"):
                session.mount(prefix, DeadlineAdapter())
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
        return url_for(self.settings, path)

    def _perform(self, step: Step) -> Any:
        """Answer one step of an exchange flow."""
        if step is NEED_TOKEN:
            return self.get_token()
        if isinstance(step, DropToken):
            self.invalidate_token(step.token)
            return None
        if not isinstance(step, Outgoing):
            raise TypeError(f"unknown exchange step {step!r}")
        rate = limiter(self.settings, self.shared_backend)
        if rate is None:
            return self._transmit(step)
        with rate.sending():
            answer = self._transmit(step)
        return pace_after(answer, rate, self.retry_policy.retry_after_cap)

    def _transmit(self, out: Outgoing) -> Answer:
        """Send one request; the whole answer within the timeout (a total deadline) and the size cap.

        The body is read as it arrived (``decode_content=False``) and decoded by the
        :class:`BodyReader` under the cap, whatever urllib3 would do with it.
        """
        from airflow_provider_butlr.client.deadline import deadline

        seconds = out.timeout or self.timeout
        session = self.get_conn()
        with deadline(seconds) as guard:
            # verify per request: requests lets REQUESTS_CA_BUNDLE override a session's verify
            response = session.request(
                out.method,
                out.url,
                json=out.json,
                params=out.params,
                headers=dict(out.headers),
                timeout=seconds,
                verify=self.settings.verify,
                allow_redirects=False,
                auth=_no_auth,
                stream=True,
            )
            with response:
                reader = BodyReader(
                    response.status_code,
                    out.url,
                    self.settings.max_response_bytes,
                    guard.deadline,
                    seconds,
                    response.headers.get("Content-Encoding"),
                )
                # urllib3 sets up its own decoders on a first read, even one that does not decode,
                # and refuses some codings itself: it never sees the coding (response.headers keep it)
                response.raw.headers.discard("Content-Encoding")
                for chunk in () if reader.done else _raw_chunks(response, reader.chunk):
                    if not reader.feed(chunk, time.monotonic()):
                        break
                body = reader.finish()
        response.raw = io.BytesIO(body)  # what .content, .text and .json() read for callers of request()
        return Answer(response.status_code, response.headers, body, response.url, raw=response)

    # --- requests --------------------------------------------------------------------------------

    def _exchange(
        self,
        method: str,
        path: str,
        *,
        parse_json: bool,
        policy: RetryPolicy | None,
        decode: Callable[[bytes], Any] | None = None,
        **options: Unpack[CallOptions],
    ) -> Outcome:
        call = make_call(self.settings, method, path, parse_json=parse_json, decode=decode, **options)
        return with_retries(
            lambda: drive(authorised_flow(call, self.settings), self._perform),
            policy or self.retry_policy,
            call.method,
            call.endpoint,
            self.settings.base_url,
            self.settings.conn_id,
        )

    def request(self, method: str, path: str, **options: Unpack[CallOptions]) -> requests.Response:
        """Send an authenticated request (retries for 429/5xx/network, one replay after a refused
        token); the final ``requests.Response``. An error status raises a :class:`ButlrAPIError`.

        ``options``: ``json`` (body), ``params`` (query string), ``headers``, ``timeout`` (seconds).
        """
        response: requests.Response = self._exchange(
            method, path, parse_json=False, policy=None, **options
        ).answer.raw
        return response

    def request_json(
        self, method: str, path: str, *, policy: RetryPolicy | None = None, **options: Unpack[CallOptions]
    ) -> Any:
        """Like :meth:`request` but returns the parsed JSON body (None for 204); a malformed body is retried."""
        return self._exchange(method, path, parse_json=True, policy=policy, **options).payload

    def redact(self, value: Any) -> Any:
        """``value`` (an answer, or what a user callable made of it) safe to hand on, e.g. to XCom:
        credential fields replaced by ``***`` (their values masked in logs), and every secret and
        token this process knows scrubbed from every string."""
        return scrub_json(redact_secret_fields(value, mask_token), (self.settings.secret,))

    def poll(self, plan: PollPlan, now: float) -> tuple[Verdict, list[Any]]:
        """One poll of a sensor's plan (:func:`~airflow_provider_butlr.polling.plans.poll_flow`);
        a GraphQL answer with ``errors`` fails the poll, as :meth:`graphql` does."""

        def send(request: PollRequest) -> Any:
            payload = self.request_json(
                request.method, request.endpoint, json=request.json, params=request.params
            )
            if request.endpoint.rstrip("/").endswith(GRAPHQL_PATH):
                graphql_data(payload, self.settings)
            return payload

        return drive(poll_flow(plan, now, time.time), send)

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
        body = graphql_body(query, variables, operation_name)
        payload = self.request_json("POST", GRAPHQL_PATH, json=body, policy=policy, timeout=timeout)
        return graphql_data(payload, self.settings)

    # --- connection test -----------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Fresh login plus one tiny read; ``(ok, message)`` with no secret in the message.

        Messages name the fields to check, never the connection's id: Airflow's Test button runs
        this under a made-up id (e.g. ``mjOC9zBe``) that would mean nothing to the user.
        """
        try:
            settings = self.settings = settings_from_connection(
                self.get_butlr_connection(), self.butlr_conn_id, anonymous=True
            )
            quick = RetryPolicy(
                max_retries=min(TEST_CONNECTION_MAX_RETRIES, settings.max_retries),
                wait_max=2.0,
                rate_limit_wait=TEST_CONNECTION_TIMEOUT,
            )
            timeout = min(self.timeout, TEST_CONNECTION_TIMEOUT)
            token = self._login(settings, quick, timeout=timeout)
            TOKEN_CACHE.put(settings.cache_key, token, store=self.token_store)
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

    # =========================================================================================
    # Data methods: reporting, stats, assets. Thin: the logic lives in reporting/ (pure: bodies,
    # rows, the streaming export engine, topology and device-health rules).
    # =========================================================================================

    def query_reporting(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """One ``POST /api/v3/reporting`` call; the whole answer (``data`` and ``page_info``)."""
        payload = self.request_json("POST", REPORTING_PATH, json=dict(body))
        if not isinstance(payload, dict):
            raise ButlrDataError(f"Butlr reporting answered a {type(payload).__name__}, not a JSON object")
        return payload

    def fetch_reporting_answer(self, body: Mapping[str, Any]) -> ReportingAnswer:
        """One ``POST /api/v3/reporting`` call as a :class:`ReportingAnswer`: ``page_info`` and
        whether there is data are known at once; the rows are decoded when first asked for."""
        answer: ReportingAnswer = self._exchange(
            "POST",
            REPORTING_PATH,
            parse_json=True,
            policy=None,
            decode=decode_reporting_answer,
            json=dict(body),
        ).payload
        return answer

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


def _raw_chunks(response: requests.Response, size: int) -> Iterator[bytes]:
    """The body as it arrived (still content-encoded), with urllib3's errors as requests raises them
    from ``iter_content`` (so the retry policy knows them)."""
    import requests
    from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

    try:
        yield from response.raw.stream(size, decode_content=False)
    except ProtocolError as err:
        raise requests.exceptions.ChunkedEncodingError(err) from err
    except DecodeError as err:
        raise requests.exceptions.ContentDecodingError(err) from err
    except ReadTimeoutError as err:
        raise requests.exceptions.ConnectionError(err) from err
    except SSLError as err:
        raise requests.exceptions.SSLError(err) from err
