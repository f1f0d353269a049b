"""Atomic file writing: the one place where symgen writes a file that must never be half-written.

Every writer (checkpoints, caches, JSON reports, SDF/XYZ files, pictures) goes through
:func:`atomic_write`: the content is written to a temporary file in the destination folder,
flushed and fsync'ed, and only then renamed over the destination with :func:`os.replace`
(atomic on POSIX and Windows). A process killed at any moment leaves either the previous file
or the new one, never a torn one, and a failing write removes its temporary file.
"""

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_json"]


def atomic_write(
    path: str | os.PathLike[str], content: str | bytes | Callable[[IO[bytes]], None]
) -> Path:
    """Write ``content`` to ``path`` atomically; return the path.

    Args:
        path: destination file; missing parent folders are created.
        content: text (written as UTF-8), bytes, or a function that writes into the open
            binary file object it is given (e.g. ``lambda f: torch.save(obj, f)``).

    Examples:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> atomic_write(d / "a.txt", "hello").read_text()
        'hello'
        >>> def broken(f):
        ...     f.write(b"half")
        ...     raise RuntimeError("killed")
        >>> try:
        ...     atomic_write(d / "a.txt", broken)
        ... except RuntimeError:
        ...     pass
        >>> (d / "a.txt").read_text(), sorted(p.name for p in d.iterdir())
        ('hello', ['a.txt'])
    """
    if not isinstance(content, (str, bytes)) and not callable(content):
        raise TypeError(
            "content must be str, bytes or a function writing to a file, "
            f"got {type(content).__name__}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(content, str):
                handle.write(content.encode("utf-8"))
            elif isinstance(content, bytes):
                handle.write(content)
            else:
                content(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_json(path: str | os.PathLike[str], payload: Any, *, indent: int = 2) -> Path:
    """``payload`` as JSON (non-JSON values written with ``str``), atomically.

    Examples:
        >>> import tempfile
        >>> p = atomic_write_json(Path(tempfile.mkdtemp()) / "r.json", {"a": 1})
        >>> json.loads(p.read_text())
        {'a': 1}
    """
    return atomic_write(path, json.dumps(payload, indent=indent, default=str) + "\n")
