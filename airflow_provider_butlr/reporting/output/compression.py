"""Compressed text outputs: gzip (standard library) and zstd (``zstandard``, or Python's own
``compression.zstd`` from 3.14), chosen by suffix (``.gz``, ``.zst``) or by argument.

A compressor wraps the binary handle of the temporary file and is closed (its trailer written)
before the file is moved into place, so a compressed export is as atomic and as streamed as a plain
one. gzip output is reproducible: no file name and no time stamp in its header, so re-running an
export writes the same bytes.
"""

from __future__ import annotations

import gzip
import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError

ZSTD_EXTRA = "airflow-provider-butlr[zstd]"
TEXT_COMPRESSIONS = ("gzip", "zstd")
# gzip's own command-line default: about as small as level 9 on export rows, at a fraction of its time.
GZIP_LEVEL = 6
ZSTD_LEVEL = 3  # zstd's default level
SUFFIX_COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}
_ALIASES = {"gz": "gzip", "zst": "zstd", "none": "none", "uncompressed": "none"}


def normalise_compression(value: Any, allowed: tuple[str, ...]) -> str:
    """``"GZ"`` -> ``"gzip"``: the canonical name, or a ButlrConfigurationError listing ``allowed``."""
    text = str(value).strip().lower()
    name = _ALIASES.get(text, text)
    if name not in allowed:
        raise ButlrConfigurationError(
            f"output_compression {value!r} is not supported here; allowed: {', '.join(allowed)}"
        )
    return name


def _zstd_module() -> tuple[str, Any] | None:
    """Python's ``compression.zstd`` (3.14+), else ``zstandard``; None when neither is installed."""
    for name in ("compression.zstd", "zstandard"):
        try:
            return name, importlib.import_module(name)
        except ImportError:
            continue
    return None


def require_compression(name: str) -> None:
    """A ButlrConfigurationError naming the extra when zstd is asked for and nothing provides it."""
    if name == "zstd" and _zstd_module() is None:
        raise ButlrConfigurationError(
            "output_compression 'zstd' needs the zstandard package (or Python 3.14's compression.zstd), "
            f"which is not installed: pip install '{ZSTD_EXTRA}'"
        )


@contextmanager
def compressed(handle: IO[bytes], name: str | None) -> Iterator[IO[bytes]]:
    """``handle`` itself (``None``/``"none"``) or a compressing writer on it, finished (trailer
    written) on a clean exit; ``handle`` itself is never closed here."""
    if name in (None, "none"):
        yield handle
        return
    if name == "gzip":
        with gzip.GzipFile(filename="", mode="wb", fileobj=handle, compresslevel=GZIP_LEVEL, mtime=0) as gz:
            yield gz  # type: ignore[misc]
        return
    found = _zstd_module()
    if found is None:
        require_compression("zstd")
        raise AssertionError("unreachable")
    module_name, module = found
    opener: Callable[[], Any]
    if module_name == "compression.zstd":
        opener = lambda: module.ZstdFile(handle, mode="wb", level=ZSTD_LEVEL)  # noqa: E731
    else:
        opener = lambda: module.ZstdCompressor(level=ZSTD_LEVEL).stream_writer(handle, closefd=False)  # noqa: E731
    writer = opener()
    yield writer
    writer.close()
