"""Issue 22, item 1: compressed answers stay under the size cap in memory, on both transports.

Every content coding the hooks accept is undone by one capped decoder (``client/body.py``), whatever
the HTTP library or its version. The memory checks measure the resident set of a process of its
own (``tests/support/memory.py``): with ``max_response_bytes`` at 1 MiB, an answer that inflates to
64 MiB (gzip, deflate with or without its zlib wrapper, br, codings nested in each other) ends in
the ButlrDataError naming the cap while the call's peak stays under 2 MiB. What cannot be undone
within that (more than 3 codings, a brotli window larger than the cap allows, zstd, unknown codings)
is refused by name, and only decodable codings are asked for.
"""

from __future__ import annotations

import gzip
import importlib.util
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_butlr.client.body import ACCEPT_ENCODING
from airflow_provider_butlr.exceptions import ButlrAPIError, ButlrDataError
from tests.support.hostile import DATA, DRIVERS, Driver, HostileApi, hostile_api, outcome, use_connection
from tests.support.memory import Case, MiB, bomb, header_of, measure

CAP = MiB
INFLATED = 64 * MiB


def _brotli_with_output_limit() -> bool:
    """brotli >= 1.2 (the test extra): the only brotli the hooks decode under a cap."""
    try:
        import brotli

        brotli.Decompressor().process(b"", output_buffer_limit=1024)
    except (ImportError, TypeError):
        return False
    return True


BROTLI = _brotli_with_output_limit()


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileApi]:
    yield from hostile_api(monkeypatch)


def _case(tmp: Path, name: str, codings: list[str], *, lgwin: int = 16, stream: int = 0) -> Case:
    body, small = tmp / f"{name}.body", tmp / f"{name}.small"
    if not stream:
        body.write_bytes(bomb(codings, INFLATED, lgwin))
    small.write_bytes(bomb(codings, 0, lgwin))
    return Case(name, header_of(codings), str(body), str(small), CAP, stream_identity=stream)


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    tmp = tmp_path_factory.mktemp("bombs")
    cases = [
        _case(tmp, "identity", [], stream=INFLATED),
        _case(tmp, "gzip", ["gzip"]),
        _case(tmp, "x-gzip", ["x-gzip"]),
        _case(tmp, "deflate", ["deflate"]),
        _case(tmp, "deflate-raw", ["deflate-raw"]),
        _case(tmp, "gzip, gzip", ["gzip", "gzip"]),
        _case(tmp, "deflate, gzip, gzip", ["deflate", "gzip", "gzip"]),
        _case(tmp, "40 x gzip", ["gzip"] * 40),  # refused: each coding undone holds its own state
    ]
    if BROTLI:
        cases += [
            _case(tmp, "br", ["br"]),
            _case(tmp, "br, gzip", ["br", "gzip"]),
            _case(tmp, "gzip, br", ["gzip", "br"]),
            _case(tmp, "br with a 4 MiB window", ["br"], lgwin=22),  # refused: larger than the cap allows
            _case(tmp, "br with a 16 MiB window", ["br"], lgwin=24),
        ]
    return cases


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_compression_bomb_stays_under_twice_the_cap_whatever_the_coding(
    bombs: list[Case], driver: str
) -> None:
    results = measure(driver, bombs)
    failures = []
    for case in bombs:
        result = results[case.name]
        refused = "times over" in result["outcome"] or "window" in result["outcome"]
        if not result["outcome"].startswith("ButlrDataError") or not (
            "max_response_bytes=1048576" in result["outcome"] or refused
        ):
            failures.append(f"{case.name}: {result['outcome']}")
        if result["growth"] >= 2 * CAP:
            failures.append(f"{case.name}: peak RSS +{result['growth'] / MiB:.1f} MiB for a 1 MiB cap")
    assert not failures, "\n".join(failures)


@DRIVERS
@pytest.mark.parametrize(
    "codings", [["gzip"], ["deflate"], ["deflate-raw"], ["gzip", "gzip"], ["x-gzip"], ["br"], ["br", "gzip"]]
)
def test_an_encoded_answer_under_the_cap_reads_whole(
    api: HostileApi, call: Driver, codings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if "br" in codings and not BROTLI:
        pytest.skip("brotli >= 1.2 is not installed")
    use_connection(monkeypatch, api, max_response_bytes=CAP)
    payload = b'{"data": [' + b",".join(b"%d" % i for i in range(20000)) + b"]}"
    body = payload
    for coding in codings:
        body = _encode(coding, body)
    api.script = lambda request: request.reply(200, body, headers={"Content-Encoding": header_of(codings)})
    result, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert err is None and result["data"][-1] == 19999


@DRIVERS
@pytest.mark.parametrize("header", ["identity, " * 7 + "gzip", "GZIP", " gzip , identity "])
def test_identity_and_spelling_in_the_header_do_not_matter(
    api: HostileApi, call: Driver, header: str
) -> None:
    """Seven "identity" entries are no coding at all (urllib3 alone would refuse more than five)."""
    api.script = lambda request: request.reply(
        200, gzip.compress(b'{"data": [1]}'), headers={"Content-Encoding": header}
    )
    result, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert err is None and result == {"data": [1]}, err


def _encode(coding: str, data: bytes) -> bytes:
    if coding in ("gzip", "x-gzip"):
        return gzip.compress(data)
    if coding == "deflate":
        return zlib.compress(data)
    if coding == "deflate-raw":
        packer = zlib.compressobj(6, zlib.DEFLATED, -15)
        return packer.compress(data) + packer.flush()
    import brotli

    return bytes(brotli.compress(data, lgwin=16))  # a window the 1 MiB cap allows


@DRIVERS
@pytest.mark.parametrize("header", ["zstd", "compress", "gzip, zstd", "identity, snappy"])
def test_a_coding_the_provider_does_not_decode_is_refused_by_name(
    api: HostileApi, call: Driver, header: str
) -> None:
    if importlib.util.find_spec("zstandard") is not None and "zstd" in header:
        import zstandard

        body = zstandard.ZstdCompressor().compress(b'{"data": []}')
    else:
        body = b"\x28\xb5\x2f\xfd not really compressed"
    api.script = lambda request: request.reply(200, body, headers={"Content-Encoding": header})
    _, err, _ = outcome(call, "POST", DATA, {"q": 1})
    refused = header.split(",")[-1].strip()
    assert isinstance(err, ButlrDataError) and repr(refused) in str(err), err
    assert ACCEPT_ENCODING in str(err)


@DRIVERS
@pytest.mark.parametrize("status", [404, 500])
@pytest.mark.parametrize(
    ("header", "body"),
    [
        ("zstd", b"\x28\xb5\x2f\xfd not really"),
        ("gzip", b"this is not gzip"),
        ("gzip, " * 5 + "gzip", b"\x1f\x8b"),
        ("br", bomb(["br"], 0, lgwin=24) if BROTLI else b""),
        ("gzip", bomb(["gzip"], 8 * MiB)),
    ],
    ids=["zstd", "garbled gzip", "6 codings", "br 16 MiB window", "gzip bomb"],
)
def test_an_error_answer_keeps_its_status_whatever_its_body_coding(
    api: HostileApi, call: Driver, status: int, header: str, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The body of an error answer is only its detail: a coding that cannot be undone (or a bomb) never
    replaces the status, so a 500 is still retried and a 404 still reads as a 404."""
    if header == "br" and not BROTLI:
        pytest.skip("brotli >= 1.2 is not installed")
    use_connection(monkeypatch, api, max_response_bytes=CAP, max_retries=1)
    api.script = lambda request: request.reply(status, body, headers={"Content-Encoding": header})
    _, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert isinstance(err, ButlrAPIError) and err.status == status, err
    assert len(api.seen) == (3 if status == 500 else 2)  # the login, the call (and its retry for a 500)


@DRIVERS
@pytest.mark.parametrize("cap", [CAP, 256 * MiB])
def test_only_decodable_codings_are_asked_for_by_both_transports(
    api: HostileApi, call: Driver, cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests and httpx would announce whatever their installed decoders allow (br, zstd); the hooks
    announce what body.py undoes under this cap: br only when any brotli window fits it."""
    use_connection(monkeypatch, api, max_response_bytes=cap)
    outcome(call, "POST", DATA, {"q": 1})
    sent = {request.path: request.headers.get("Accept-Encoding") for request in api.seen}
    expected = "gzip, deflate, br" if BROTLI and cap >= 128 * MiB else "gzip, deflate"
    assert set(sent.values()) == {expected}, sent  # the login and the data call alike
    assert "zstd" not in expected


def test_the_brotli_window_is_read_from_the_first_byte() -> None:
    """RFC 7932 9.1, checked against what the brotli encoder writes for every window size."""
    if not BROTLI:
        pytest.skip("brotli >= 1.2 is not installed")
    import brotli

    from airflow_provider_butlr.client.body import brotli_window

    for lgwin in range(10, 25):
        first = brotli.compress(b"x" * 100, lgwin=lgwin)[0]
        assert brotli_window(first) == (1 << lgwin) - 16, lgwin


pytestmark = pytest.mark.airflow_independent
