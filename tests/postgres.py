"""A throwaway PostgreSQL for the tests: $MNISTLAB_TEST_POSTGRES (CI starts one), else a cluster of our own in a
temporary folder on a free local port, run by a non-root user (initdb refuses root), when initdb is installed."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

ENV = "MNISTLAB_TEST_POSTGRES"


def bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, or Debian's /usr/lib/postgresql/VERSION/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(dirs[-1]).parent if dirs else None


def why_not() -> str | None:
    """Why no PostgreSQL can be had here, or None."""
    if os.environ.get(ENV):
        return None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    if bin_dir() is None:
        return f"PostgreSQL is not installed (no initdb; apt-get install postgresql) and ${ENV} is not set"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser, so initdb (which refuses root) cannot run"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """A SQLAlchemy URL of an empty PostgreSQL database, for the duration of the `with`."""
    if os.environ.get(ENV):
        yield os.environ[ENV]
        return
    tools = bin_dir()
    assert tools is not None
    top = Path(tempfile.mkdtemp(prefix="mnistlab-pg-"))
    top.chmod(0o755)  # the cluster's user must reach its folder
    data, port = top / "data", _free_port()
    data.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(data, "nobody", "nogroup" if _has_group("nogroup") else None)
        as_user = ["runuser", "-u", "nobody", "--"]
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    try:
        subprocess.run([*as_user, tools / "initdb", "-D", data, "-A", "trust", "-U", "postgres"], check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run([*as_user, tools / "pg_ctl", "-D", data, "-o", opts, "-w", "-l", data / "log", "start"],
                       check=True, capture_output=True)  # fmt: skip
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([*as_user, tools / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _has_group(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
