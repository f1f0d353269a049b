"""Cache paths and an atomic, versioned binary array store.

Every cache file symgen writes is one *uncompressed* ``.npz`` archive holding plain NumPy arrays
(no pickles) plus two bookkeeping entries:

* ``__format__`` — a format tag such as ``"symgen-molecule-dataset/1"``; a file with another tag
  is rejected with :class:`CacheFormatError` instead of being misread;
* ``__metadata__`` — a JSON object (UTF-8 bytes) with free-form provenance.

Writes are atomic (:func:`symgen.files.atomic_write`): the archive is written to a temporary
file in the destination folder, flushed and fsync'ed, and only then renamed over the
destination. An interrupted or failing write therefore leaves either the previous file or
nothing, never a truncated archive, and the temporary file is removed.

The default cache folder is ``$SYMGEN_CACHE`` when set, else ``~/.cache/symgen``.

Example:
    >>> import tempfile, numpy as np
    >>> path = Path(tempfile.mkdtemp()) / "x.npz"
    >>> save_arrays(path, {"a": np.arange(3)}, format_tag="demo/1", metadata={"n": 3})
    >>> arrays, meta = load_arrays(path, format_tag="demo/1")
    >>> arrays["a"].tolist(), meta["n"]
    ([0, 1, 2], 3)
"""

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from symgen.files import atomic_write

__all__ = [
    "CacheError",
    "CacheNotFoundError",
    "CacheFormatError",
    "default_cache_dir",
    "resolve_cache_dir",
    "save_arrays",
    "load_arrays",
]

_FORMAT_KEY = "__format__"
_META_KEY = "__metadata__"


class CacheError(RuntimeError):
    """Base class of cache problems (missing, corrupt or incompatible files)."""


class CacheNotFoundError(CacheError, FileNotFoundError):
    """Raised when a cache file does not exist."""


class CacheFormatError(CacheError):
    """Raised when a cache file is corrupt, truncated, or has an incompatible format tag."""


def default_cache_dir() -> Path:
    """The default cache folder: ``$SYMGEN_CACHE`` if set, else ``~/.cache/symgen``.

    Examples:
        >>> isinstance(default_cache_dir(), Path)
        True
    """
    env = os.environ.get("SYMGEN_CACHE")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/symgen").expanduser()


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    """``cache_dir`` as a :class:`Path`, or :func:`default_cache_dir` when ``None``."""
    return default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()


def _write_npz(handle: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """Serialize ``arrays`` into an open binary file (uncompressed npz). Split out for tests."""
    np.savez(handle, **arrays)


def save_arrays(
    path: str | os.PathLike[str],
    arrays: Mapping[str, np.ndarray],
    *,
    format_tag: str,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Atomically write ``arrays`` to ``path`` as an uncompressed ``.npz`` with a format tag.

    Args:
        path: destination file (parent folders are created).
        arrays: name -> array; object arrays are refused (the cache never needs pickles).
        format_tag: version string checked by :func:`load_arrays`.
        metadata: JSON-serializable provenance stored alongside.

    Raises:
        ValueError: for reserved names or object-dtype arrays.
    """
    payload: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        if name in (_FORMAT_KEY, _META_KEY):
            raise ValueError(f"array name {name!r} is reserved")
        arr = np.asarray(value)
        if arr.dtype == object:
            raise ValueError(f"array {name!r} has object dtype; cache files hold plain arrays only")
        payload[name] = arr
    payload[_FORMAT_KEY] = np.frombuffer(format_tag.encode("utf-8"), dtype=np.uint8)
    meta = json.dumps(dict(metadata or {}), sort_keys=True).encode("utf-8")
    payload[_META_KEY] = np.frombuffer(meta, dtype=np.uint8)

    atomic_write(path, lambda handle: _write_npz(handle, payload))


def load_arrays(
    path: str | os.PathLike[str], *, format_tag: str
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_arrays`, checking its format tag.

    Returns:
        ``(arrays, metadata)``; arrays are fully read into memory.

    Raises:
        CacheNotFoundError: the file does not exist.
        CacheFormatError: the file is not a valid archive, is truncated, or has another tag.
    """
    path = Path(path)
    if not path.is_file():
        raise CacheNotFoundError(f"cache file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            if _FORMAT_KEY not in names:
                raise CacheFormatError(f"{path} is not a symgen cache file (no format tag)")
            tag = archive[_FORMAT_KEY].tobytes().decode("utf-8", errors="replace")
            if tag != format_tag:
                raise CacheFormatError(
                    f"{path} has format {tag!r}, expected {format_tag!r}; delete it to rebuild"
                )
            meta = (
                json.loads(archive[_META_KEY].tobytes().decode("utf-8"))
                if _META_KEY in names
                else {}
            )
            arrays = {k: archive[k] for k in names if k not in (_FORMAT_KEY, _META_KEY)}
    except CacheError:
        raise
    except (
        zipfile.BadZipFile,
        ValueError,
        OSError,
        EOFError,
        KeyError,
        json.JSONDecodeError,
    ) as exc:
        raise CacheFormatError(f"corrupt cache file {path}: {exc}") from exc
    return arrays, meta
