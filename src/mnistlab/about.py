"""What mnistlab says about itself: its installed version, for `mnistlab --version` and the server's schema."""

from __future__ import annotations


def version() -> str:
    """The installed mnistlab's version ("0" when it runs from a source tree that was never installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("mnistlab")
    except PackageNotFoundError:
        return "0"
