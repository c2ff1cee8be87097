"""Atomic writes: temp file + fsync + rename, so a kill never leaves a half-written output."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _umask() -> int:
    mask = os.umask(0o022)  # read once, at import, before any thread of ours writes a file
    os.umask(mask)
    return mask


NEW_FILE_MODE = 0o666 & ~_umask()  #: the permissions a new file gets


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (before an atomic directory rename), each file
    with the permissions a new file gets (some writers, safetensors among them, make theirs owner-only,
    which gets in the way of sharing a policy)."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            if not (Path(dirpath) / name).is_symlink():
                os.chmod(Path(dirpath) / name, NEW_FILE_MODE)
            fd = os.open(Path(dirpath) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def replace_dir(tmp: Path, dest: Path) -> None:
    """Move the fully written directory ``tmp`` to ``dest`` (replacing an old ``dest``)."""
    fsync_tree(tmp)
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_csv(path: str | Path, rows: Iterable[Sequence[Any]]) -> None:
    """Write ``rows`` (the header first) as a CSV file, atomically."""
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    write_text(path, buf.getvalue())


def append_csv_row(path: str | Path, row: Sequence[Any]) -> None:
    """Add one row to a CSV log: the whole file is rewritten atomically, so a kill mid-write leaves
    either the old log or the new one, never a torn last line."""
    path = Path(path)
    buf = io.StringIO()
    csv.writer(buf).writerow(row)
    old = path.read_text() if path.is_file() else ""
    write_text(path, old + buf.getvalue())
