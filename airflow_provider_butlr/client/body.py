"""Reading an answer's body within limits: a size cap (after decompression), a deadline, and no
secret at a cut.

Both transports hand over the bytes *as they arrived* (requests' ``raw.stream(decode_content=False)``,
httpx's ``aiter_raw``); the content codings are undone here, incrementally, each step producing at
most :data:`PIECE` bytes at a time. So a small compressed answer that inflates to gigabytes, or a
coding nested in itself (``gzip, gzip``), stops at the cap with at most the cap plus one piece in
memory, whichever library and version moves the bytes. Only codings decoded this way are asked for
(:data:`ACCEPT_ENCODING`: gzip and deflate, and br where ``brotli`` >= 1.2 is installed); any other
coding in an answer (zstd included: no bounded decoder before Python 3.14) is refused.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol
from urllib.parse import urlsplit

from airflow_provider_butlr.client.retry import DeadlineExceeded, UndecodableBody
from airflow_provider_butlr.client.scrub import cut_tail
from airflow_provider_butlr.exceptions import ButlrDataError

ERROR_BODY_LIMIT = 64 * 1024  # what is kept of an error answer (its text goes into messages)
READ_CHUNK = 256 * 1024
PIECE = 64 * 1024  # the most one decoding step may produce at once


class _Stage(Protocol):
    """One content coding being undone."""

    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def flush(self) -> Iterator[bytes]: ...


class _Zlib:
    """gzip (members one after another) or deflate (zlib-wrapped, or raw as some servers send it)."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._wbits = 16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(self._wbits)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        pending = data
        while pending:
            try:
                out = self._obj.decompress(pending, PIECE)
            except zlib.error:
                if self._gzip or self._started:
                    raise
                self._wbits = -zlib.MAX_WBITS  # deflate without the zlib wrapper
                self._obj = zlib.decompressobj(self._wbits)
                out = self._obj.decompress(pending, PIECE)
            self._started = True
            if out:
                yield out
            pending = self._obj.unconsumed_tail
            if self._obj.eof:
                rest = self._obj.unused_data
                if not (self._gzip and rest.strip(b"\x00")):
                    return  # a deflate stream ends once; trailing NULs after gzip are padding
                self._obj = zlib.decompressobj(self._wbits)  # the next gzip member
                pending = rest

    def flush(self) -> Iterator[bytes]:
        out = self._obj.flush()
        if out:
            yield out


def _brotli_stage() -> Callable[[], _Stage] | None:
    """Brotli with an output limit per call (``brotli`` >= 1.2), else None: then it is not asked for."""
    try:
        import brotli
    except ImportError:
        return None
    probe = brotli.Decompressor()
    try:
        probe.process(b"", output_buffer_limit=PIECE)
    except TypeError:
        return None

    class _Brotli:
        def __init__(self) -> None:
            self._obj = brotli.Decompressor()

        def feed(self, data: bytes) -> Iterator[bytes]:
            out = self._obj.process(data, output_buffer_limit=PIECE)
            if out:
                yield out
            while not self._obj.is_finished() and not self._obj.can_accept_more_data():
                out = self._obj.process(b"", output_buffer_limit=PIECE)
                if out:
                    yield out

        def flush(self) -> Iterator[bytes]:
            return iter(())

    return _Brotli


STAGES: dict[str, Callable[[], _Stage]] = {
    "gzip": lambda: _Zlib(gzip=True),
    "x-gzip": lambda: _Zlib(gzip=True),
    "deflate": lambda: _Zlib(gzip=False),
}
_CODING_ERRORS: tuple[type[Exception], ...] = ()
_brotli = _brotli_stage()
if _brotli is not None:
    import brotli

    STAGES["br"] = _brotli
    _CODING_ERRORS = (brotli.error,)
_DECODE_ERRORS: tuple[type[Exception], ...] = (zlib.error, *_CODING_ERRORS)
ACCEPT_ENCODING = ", ".join(name for name in STAGES if name != "x-gzip")


def content_stages(header: str | None, url: str) -> list[_Stage]:
    """The stages that undo ``Content-Encoding: header``, outermost first; refuses unknown codings."""
    names = [part.strip().lower() for part in (header or "").split(",") if part.strip()]
    stages = []
    for name in reversed(names):  # the last coding applied is the first to undo
        if name == "identity":
            continue
        factory = STAGES.get(name)
        if factory is None:
            raise ButlrDataError(
                f"Butlr answer from {urlsplit(url).path} is encoded with {name!r}, which the provider "
                f"does not decode (it asks for {ACCEPT_ENCODING})"
            )
        stages.append(factory())
    return stages


class BodyReader:
    """Collects a streamed body, decoded, up to a size cap and a deadline (the drivers feed it chunks)."""

    def __init__(
        self,
        status: int,
        url: str,
        limit: int,
        deadline: float,
        seconds: float,
        content_encoding: str | None = None,
    ) -> None:
        self.error = status >= 300
        self.limit = min(limit, ERROR_BODY_LIMIT) if self.error else limit
        self.url = url
        self.deadline = deadline
        self.seconds = seconds
        self._stages = content_stages(content_encoding, url)
        self._parts: list[bytes] = []
        self._size = 0
        self.truncated = False
        self.done = False

    def feed(self, chunk: bytes, now: float) -> bool:
        """Add a chunk as it arrived; False once an error body has enough (stop reading).

        Raises past the deadline or the size cap, and :class:`ButlrDataError` for a body that does
        not decode as its ``Content-Encoding`` says.
        """
        if now > self.deadline:
            raise DeadlineExceeded(self.seconds)
        return self._take(self._decoded([chunk], flush=False))

    def finish(self) -> bytes:
        """The whole body once the transport has no more bytes (a coding's last bytes included)."""
        if not self.done:
            self._take(self._decoded([], flush=True))
        return self.body()

    def _decoded(self, chunks: Iterable[bytes], *, flush: bool) -> Iterator[bytes]:
        pieces: Iterable[bytes] = chunks
        try:
            for stage in self._stages:
                pieces = _through(stage, pieces, flush)
            yield from pieces
        except _DECODE_ERRORS as err:
            raise UndecodableBody(f"not what its Content-Encoding says ({err})") from None

    def _take(self, pieces: Iterable[bytes]) -> bool:
        for piece in pieces:
            room = self.limit - self._size
            if len(piece) > room:
                if self.error:
                    self._parts.append(piece[:room])
                    self._size = self.limit
                    self.truncated = self.done = True
                    return False
                raise ButlrDataError(
                    f"Butlr answer from {urlsplit(self.url).path} is larger than max_response_bytes="
                    f"{self.limit} (connection extra; decompressed size); narrow the request or raise "
                    "the limit"
                )
            self._parts.append(piece)
            self._size += len(piece)
        return True

    def body(self) -> bytes:
        """What was read; a cut error body loses its tail, where a secret could straddle the cut."""
        body = b"".join(self._parts)
        return cut_tail(body) if self.truncated else body


def _through(stage: _Stage, pieces: Iterable[bytes], flush: bool) -> Iterator[bytes]:
    """``pieces`` through one stage, lazily: nothing is produced before the next stage asks for it."""
    for piece in pieces:
        yield from stage.feed(piece)
    if flush:
        yield from stage.flush()
