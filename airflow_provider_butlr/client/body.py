"""Reading an answer's body within limits: a size cap (after decompression), a deadline, and no
secret at a cut.

Both transports hand over the bytes *as they arrived* (requests' ``raw.stream(decode_content=False)``,
httpx's ``aiter_raw``); the content codings are undone here, incrementally, each step producing at
most one small piece at a time. So a small compressed answer that inflates to gigabytes, or a
coding nested in itself (``gzip, gzip``), stops at the cap whichever library and version moves the
bytes. The memory a read may take is budgeted against the cap (:func:`read_sizes`): reads and
pieces shrink with it, at most :data:`MAX_CODINGS` codings are undone, and a brotli stream declares
its window in its first byte, which must fit an eighth of the cap. With a cap of 1 MiB and more
(the least ``max_response_bytes`` allows), a read stays under twice the cap, whatever the coding.

Only codings decoded this way are asked for (:func:`accept_encoding`: gzip and deflate, and br
where ``brotli`` >= 1.2 is installed and the cap leaves room for any brotli window); any other
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
READ_CHUNK = 256 * 1024  # the most read from the transport at once (less for small caps)
PIECE = 64 * 1024  # the most one decoding step may produce at once (less for small caps)
MAX_CODINGS = 3  # codings undone one inside the other; more is refused (each holds its own state)
WINDOW_SHARE = 8  # a brotli window may take this fraction of the cap
MAX_BROTLI_WINDOW = (1 << 24) - 16  # the largest standard brotli window (RFC 7932)


def read_sizes(limit: int) -> tuple[int, int]:
    """``(read chunk, decoded piece)`` for a cap: an eighth and a sixteenth of it, within bounds."""
    return max(16 * 1024, min(READ_CHUNK, limit // 8)), max(4 * 1024, min(PIECE, limit // 16))


class _Stage(Protocol):
    """One content coding being undone."""

    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def flush(self) -> Iterator[bytes]: ...


class _Zlib:
    """gzip (members one after another) or deflate (zlib-wrapped, or raw as some servers send it)."""

    def __init__(self, gzip: bool, piece: int) -> None:
        self._gzip = gzip
        self._piece = piece
        self._wbits = 16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(self._wbits)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        pending = data
        while pending:
            try:
                out = self._obj.decompress(pending, self._piece)
            except zlib.error:
                if self._gzip or self._started:
                    raise
                self._wbits = -zlib.MAX_WBITS  # deflate without the zlib wrapper
                self._obj = zlib.decompressobj(self._wbits)
                out = self._obj.decompress(pending, self._piece)
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


def brotli_window(first_byte: int) -> int | None:
    """The window a brotli stream declares in its first byte (RFC 7932, 9.1); None: not standard."""
    if not first_byte & 1:
        wbits = 16
    elif (first_byte >> 1) & 7:
        wbits = 17 + ((first_byte >> 1) & 7)
    else:
        extra = (first_byte >> 4) & 7
        if extra == 1:  # the large-window extension: up to 1 GiB
            return None
        wbits = 17 if extra == 0 else 8 + extra
    return (1 << wbits) - 16


def _brotli_stage() -> Callable[[int, int], _Stage] | None:
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
        def __init__(self, piece: int, max_window: int) -> None:
            self._obj = brotli.Decompressor()
            self._piece = piece
            self._max_window = max_window
            self._checked = False

        def feed(self, data: bytes) -> Iterator[bytes]:
            if data and not self._checked:
                window = brotli_window(data[0])
                if window is None or window > self._max_window:
                    raise _WindowTooLarge(window)
                self._checked = True
            # The limit is loose (a piece may reach 1.5x it) and can_accept_more_data() says nothing
            # of output still pending: drain until the decoder gives nothing more for this input.
            out = self._obj.process(data, output_buffer_limit=self._piece)
            while out:
                yield out
                if self._obj.is_finished():
                    return
                out = self._obj.process(b"", output_buffer_limit=self._piece)

        def flush(self) -> Iterator[bytes]:
            return self.feed(b"")

    return _Brotli


class _WindowTooLarge(Exception):
    def __init__(self, window: int | None) -> None:
        super().__init__(window)
        self.window = window


_brotli = _brotli_stage()
CODINGS: tuple[str, ...] = ("gzip", "x-gzip", "deflate") + (("br",) if _brotli is not None else ())
_CODING_ERRORS: tuple[type[Exception], ...] = ()
if _brotli is not None:
    import brotli

    _CODING_ERRORS = (brotli.error,)
_DECODE_ERRORS: tuple[type[Exception], ...] = (zlib.error, *_CODING_ERRORS)
ACCEPT_ENCODING = ", ".join(name for name in CODINGS if name != "x-gzip")  # every coding decoded here


def accept_encoding(limit: int) -> str:
    """The ``Accept-Encoding`` of a request under a cap: br only when any brotli window fits it."""
    if "br" in CODINGS and limit // WINDOW_SHARE < MAX_BROTLI_WINDOW:
        return ", ".join(name for name in CODINGS if name not in ("x-gzip", "br"))
    return ACCEPT_ENCODING


def content_stages(header: str | None, url: str, limit: int) -> list[_Stage]:
    """The stages that undo ``Content-Encoding: header``, outermost first; refuses unknown codings."""
    names = [part.strip().lower() for part in (header or "").split(",") if part.strip()]
    names = [name for name in names if name != "identity"]
    path = urlsplit(url).path
    if len(names) > MAX_CODINGS:
        raise ButlrDataError(
            f"Butlr answer from {path} is encoded {len(names)} times over ({(header or '')[:80]!r}); "
            f"the provider undoes at most {MAX_CODINGS} codings"
        )
    piece = read_sizes(limit)[1]
    brotli_count = names.count("br")
    stages: list[_Stage] = []
    for name in reversed(names):  # the last coding applied is the first to undo
        if name in ("gzip", "x-gzip", "deflate"):
            stages.append(_Zlib(gzip=name != "deflate", piece=piece))
        elif name == "br" and _brotli is not None:
            stages.append(_brotli(piece, limit // WINDOW_SHARE // brotli_count))
        else:
            raise ButlrDataError(
                f"Butlr answer from {path} is encoded with {name[:40]!r}, which the provider "
                f"does not decode (it asks for {ACCEPT_ENCODING})"
            )
    return stages


class BodyReader:
    """Collects a streamed body, decoded, up to a size cap and a deadline (the drivers feed it chunks
    of :attr:`chunk` bytes)."""

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
        self.cap = limit
        self.limit = min(limit, ERROR_BODY_LIMIT) if self.error else limit
        self.url = url
        self.deadline = deadline
        self.seconds = seconds
        self.chunk = read_sizes(limit)[0]
        self._parts: list[bytes] = []
        self._size = 0
        self.truncated = False
        self.done = False
        self._unreadable = ""  # why an error answer's body is not kept (its status still counts)
        try:
            self._stages = content_stages(content_encoding, url, limit)
        except ButlrDataError as err:
            if not self.error:
                raise
            self._stages, self._unreadable, self.done = [], str(err), True

    def feed(self, chunk: bytes, now: float) -> bool:
        """Add a chunk as it arrived; False once an error body has enough (stop reading).

        Raises past the deadline or the size cap, and :class:`ButlrDataError` for a body that does
        not decode as its ``Content-Encoding`` says.
        """
        if now > self.deadline:
            raise DeadlineExceeded(self.seconds)
        if self._unreadable:
            return False
        return self._guarded(lambda: self._take(self._decoded([chunk], flush=False)))

    def finish(self) -> bytes:
        """The whole body once the transport has no more bytes (a coding's last bytes included)."""
        if not self.done:
            self._guarded(lambda: self._take(self._decoded([], flush=True)))
        return self.body()

    def _guarded(self, step: Callable[[], bool]) -> bool:
        """An error answer whose body cannot be undone keeps its status: the body becomes a note."""
        try:
            return step()
        except (UndecodableBody, ButlrDataError) as err:
            if not self.error:
                raise
            self._unreadable, self.done = str(err), True
            return False

    def _decoded(self, chunks: Iterable[bytes], *, flush: bool) -> Iterator[bytes]:
        pieces: Iterable[bytes] = chunks
        try:
            for stage in self._stages:
                pieces = _through(stage, pieces, flush)
            yield from pieces
        except _DECODE_ERRORS as err:
            raise UndecodableBody(f"not what its Content-Encoding says ({err})") from None
        except _WindowTooLarge as err:
            declared = "a non-standard large window" if err.window is None else f"a {err.window} byte window"
            raise ButlrDataError(
                f"Butlr answer from {urlsplit(self.url).path} is br-encoded with {declared}, more than "
                f"max_response_bytes={self.cap} (connection extra) leaves room for (1/{WINDOW_SHARE}); "
                "raise the limit"
            ) from None

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
        if self._unreadable:
            return b"(an error body the provider could not decode: " + self._unreadable.encode()[:200] + b")"
        body = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        return cut_tail(body) if self.truncated else body


def _through(stage: _Stage, pieces: Iterable[bytes], flush: bool) -> Iterator[bytes]:
    """``pieces`` through one stage, lazily: nothing is produced before the next stage asks for it."""
    for piece in pieces:
        yield from stage.feed(piece)
    if flush:
        yield from stage.flush()
