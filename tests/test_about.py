"""about.py: the version mnistlab reports, the same for the command line and the server."""

from importlib.metadata import version as installed

from mnistlab.about import version


def test_the_version_is_the_installed_packages():
    assert version() == installed("mnistlab")
