"""The mirror a dataset comes from: a folder, a file:// URL or an http(s) URL prefix, each refused in one line
when it is none of them."""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from pathlib import Path

from mnistlab.errors import UserError


def default_mirror(mirror: str | None = None) -> str | None:
    """`mirror`, else $MNISTLAB_MIRROR, else None (torchvision's internet mirrors)."""
    return mirror or os.environ.get("MNISTLAB_MIRROR") or None


def parse_mirror(mirror: str | None, holds: str) -> Path | str | None:
    """The mirror as a local folder (a Path), an http(s) URL prefix ending in "/" (a str), or None (torchvision's
    internet mirrors). Anything else (a malformed URL, another scheme, a file URL naming another host or a folder
    that does not exist, a missing folder) is a `UserError`: a file URL never falls back to the internet."""
    if not mirror:
        return None
    forms = f"expected a folder, file:///absolute/folder or an http(s):// URL prefix that holds {holds}"

    def bad(why: str) -> UserError:
        return UserError(f"mirror {mirror!r} {why}; {forms}")

    try:
        url = urllib.parse.urlsplit(mirror)
        url.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError as e:
        raise bad(f"is not a valid URL ({e})") from None
    if not url.scheme or len(url.scheme) == 1:  # no scheme (or a Windows drive letter): a folder path
        if "://" in mirror:
            raise bad("is not a valid URL (no scheme before '://')")
        return _mirror_folder(mirror, Path(mirror).expanduser(), forms)
    if url.scheme not in ("file", "http", "https"):
        raise bad(f"has unsupported scheme {url.scheme!r}")
    if any(c.isspace() or not c.isprintable() for c in mirror):
        raise bad("is not a valid URL (it holds a space or control character; write a space as %20)")
    if url.query or url.fragment:
        raise bad("is not a valid URL prefix (it has a ?query or #fragment)")
    if url.scheme == "file":
        return _mirror_folder(mirror, _file_url_folder(url, bad), forms)
    if not url.hostname:
        raise bad("is not a valid URL (it names no host)")
    return mirror.rstrip("/") + "/"


def _file_url_folder(url: urllib.parse.SplitResult, bad) -> Path:
    """The local folder a file:// URL names; `bad(why)` is the error for one that names another host or no
    absolute folder."""
    if url.netloc not in ("", "localhost"):
        raise bad(
            f"names the host {url.netloc!r}, but a file URL must name a local folder (three slashes: "
            "file:///absolute/folder)"
        )
    if not url.path.startswith("/"):
        raise bad("does not name an absolute folder")
    return Path(urllib.request.url2pathname(url.path))


def _mirror_folder(mirror: str, folder: Path, forms: str) -> Path:
    """`folder`, the local folder that `mirror` names, if it is one."""
    if not folder.is_dir():
        named = f"mirror {mirror!r}" + ("" if str(folder) == mirror else f" (folder {str(folder)!r})")
        raise UserError(f"{named} {'is not a folder' if folder.exists() else 'does not exist'}; {forms}")
    return folder
