"""Checksum manifests: the one format that logs, takeover clips and scenario suites share.

A directory's header JSON (``manifest.json`` for logs, ``metadata.json`` for clips and suites) holds
``format``, ``version`` and ``files``: ``{relative path: sha256}``. Writers call :func:`digest`;
readers call :func:`read_header` then :func:`verify`, which names the first bad file and the fix.
A file verified once keeps its verdict for the rest of the process while its size and modification
time stay the same, so a command checks each file once however often it opens the directory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from drivegpt.core.errors import UserError

_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256 already checked


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def digest(root: Path, names: Iterable[str]) -> dict[str, str]:
    """``{name: sha256}`` of files under ``root`` (the ``files`` entry of a header)."""
    return {name: sha256_file(root / name) for name in names}


def read_header(path: Path, fmt: str, version: int, error: type[UserError], fix: str) -> dict[str, Any]:
    """The header JSON at ``path``, checked for its format and version; ``error`` names what is wrong."""
    if not path.is_file():
        raise error(f"{path}: missing manifest (not a {fmt} directory, or an interrupted write); {fix}")
    try:
        header = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise error(f"{path}: corrupt manifest ({err}); {fix}") from None
    if not isinstance(header, dict) or header.get("format") != fmt or header.get("version") != version:
        got = (header.get("format"), header.get("version")) if isinstance(header, dict) else (None, None)
        raise error(f"{path}: not {fmt} v{version} (found {got[0]!r} v{got[1]!r}); {fix}")
    if not isinstance(header.get("files"), dict):
        raise error(f"{path}: no 'files' checksums; {fix}")
    return header


def verify(
    root: Path,
    files: dict[str, str],
    error: type[UserError],
    fix: str,
    names: Iterable[str] | None = None,
    exact: bool = False,
) -> None:
    """Check ``names`` (default: every file listed) against their sha256 in ``files``.

    ``exact``: also refuse files under ``root`` that the manifest does not list.
    """
    for name in files if names is None else names:
        f = root / name
        if name not in files:
            raise error(f"{f}: not listed in the checksums; {fix}")
        if not f.is_file():
            raise error(f"{f}: missing file listed in the checksums; {fix}")
        st = f.stat()
        key = (str(f.resolve()), st.st_size, st.st_mtime_ns)
        if _VERIFIED.get(key) == files[name]:
            continue
        if sha256_file(f) != files[name]:
            raise error(f"{f}: checksum mismatch (truncated or corrupt file); {fix}")
        _VERIFIED[key] = files[name]
    if exact:
        on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
        extra = sorted(on_disk - set(files))
        if extra:
            raise error(f"{root / extra[0]}: file not in the checksums ({len(extra)} unexpected); {fix}")
