"""Key files: written once, never readable by others, never replacing a key another process wrote first.

>>> import tempfile
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "k" / "a.key"
>>> write_new_key(path, 32); len(path.read_bytes()), oct(path.stat().st_mode & 0o777)
(32, '0o600')
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_new_key(path: Path, size: int) -> None:
    """Write ``size`` random bytes to ``path`` (its folder made 0700), unless a key is there already.

    The key is written to a private temporary file and published with a hard link, so no reader ever sees
    half a key and a key another process created meanwhile wins. Raises ``OSError`` for the caller to explain.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(size))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
