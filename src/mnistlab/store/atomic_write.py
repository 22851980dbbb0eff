"""Files written whole or not at all, and never through a link: a temporary file in the same folder, fsync, rename."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from pathlib import Path

from mnistlab.errors import UserError, one_line

FULL = (errno.ENOSPC, errno.EDQUOT)  # a full disk or a quota: the message says how much was needed, and was free


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Put `data` at `path`: written to a new temporary file beside it, synced, then renamed over it. A crash or a
    failed write leaves the old file (or none) byte for byte, and no temporary file; a link at `path` is replaced
    by the file, never written through (what it pointed to is not touched). A failure is a one-line UserError."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # O_EXCL: never an existing file, nor a link planted at the temporary name; the mode follows the umask
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            space = _space(e, path.parent, len(data))
            raise UserError(f"cannot write {path}: {one_line(e)}{space}; {_kept(path)}") from None
        raise
    sync_folder(path.parent)
    return path


def _space(e: OSError, folder: Path, needed: int) -> str:
    if e.errno == errno.EFBIG:
        return f" ({needed / 1e6:,.1f} MB: over this process's file-size limit, see ulimit -f)"
    if e.errno not in FULL:
        return ""
    try:
        free = f"{shutil.disk_usage(folder).free / 1e6:,.1f} MB free there"
    except OSError:
        free = "free space unknown"
    return f" ({needed / 1e6:,.1f} MB needed in {folder}, {free})"


def _kept(path: Path) -> str:
    return f"{path.name} was left as it was" if os.path.lexists(path) else "nothing was left behind"


def nearest_existing(path: Path) -> Path:
    """`path`, or the nearest of its parents that exists."""
    return next(p for p in (path, *path.absolute().parents) if p.exists())


def check_space(writes: dict[Path, int]) -> None:
    """Refuse, before anything is written, writes ({file: bytes}) that their disks cannot hold: the sizes are summed
    per file system (a replaced file's old copy stays until the rename, so it is not counted as free)."""
    needed: dict[int, tuple[Path, int]] = {}
    for path, size in writes.items():
        folder = nearest_existing(path.parent)
        device = folder.stat().st_dev
        needed[device] = (needed.get(device, (folder, 0))[0], needed.get(device, (folder, 0))[1] + size)
    for folder, size in needed.values():
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            continue  # unknown: the writes themselves will tell
        if size > free:
            raise UserError(
                f"not enough space: {size / 1e6:,.1f} MB to write, {free / 1e6:,.1f} MB free in {folder}; nothing "
                "was written"
            )


def sync_folder(folder: Path) -> None:
    """fsync a folder, so that a rename in it survives a crash (where the platform can: not on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the file itself was synced
    finally:
        os.close(fd)


def real_folder(path: str | Path) -> Path:
    """`path` as a folder of its own to write into: created if missing; a link there is removed first (what it
    pointed to is not touched), so that nothing written into the folder lands elsewhere; a file there is refused."""
    path = Path(path)
    if path.is_symlink():
        path.unlink()
    elif path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file where a folder belongs; move it away or name another folder")
    path.mkdir(parents=True, exist_ok=True)
    return path
