"""The data folder: where it is, the records mnistlab keeps there of what it verified, and half-written files."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path


def default_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """`data_dir`, else $MNISTLAB_DATA, else ~/.cache/mnistlab."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get("MNISTLAB_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mnistlab"


def part(dest: Path) -> Path:
    """Where this process writes `dest` before renaming it into place (a reader never sees half a file)."""
    return dest.with_name(f"{dest.name}.{os.getpid()}.part")


def clear_stale_parts(raw: Path) -> None:
    """Delete the `.part` files (`part`) of processes that are gone: one killed while fetching or extracting left
    its half-written copy behind. Those of running processes (a concurrent fill) are theirs to finish."""
    for p in raw.glob("*.part"):
        m = re.fullmatch(r".*\.(\d+)\.part", p.name)
        if not m:
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            p.unlink(missing_ok=True)
        except (PermissionError, OverflowError, OSError):  # another user's process, or not a pid at all
            pass


# Two records per dataset, in its raw folder, {"dataset": name, "files": {file name: entry}}:
# - "verified": per official .gz, {"md5": of the copy there, "size": its bytes, "of": the checksums it passed}. A
#   copy that passed on its content (or came out of a verified archive) passes again on its md5 alone, and
#   `mnistlab datasets` says what is present without hashing anything.
# - "extracted": per extracted idx file, {"sha256", "size", "mtime_ns"}: it is hashed again only when its size or
#   modification time change.


def _record_path(raw: Path, kind: str, dataset: str) -> Path:
    return raw / f"mnistlab-{kind}-{dataset}.json"


def read_record(raw: Path, kind: str, dataset: str) -> dict[str, dict]:
    """The record `kind` ("verified" or "extracted") of `dataset` in `raw`: {file name: entry}; {} if unreadable."""
    try:
        files = json.loads(_record_path(raw, kind, dataset).read_text())["files"]
        return {name: entry for name, entry in files.items() if isinstance(entry, dict)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def write_record(raw: Path, kind: str, dataset: str, files: dict[str, dict]) -> None:
    """Replace the record `kind` of `dataset` in `raw` with `files`, unless it already holds them."""
    if files == read_record(raw, kind, dataset):
        return
    dest = _record_path(raw, kind, dataset)
    tmp = part(dest)
    tmp.write_text(json.dumps({"dataset": dataset, "files": files}, indent=1, sort_keys=True))
    os.replace(tmp, dest)
