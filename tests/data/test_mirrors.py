"""mnistlab.data.mirrors: a mirror is a folder, a file:// URL or an http(s) prefix; anything else is one UserError."""

from __future__ import annotations

import pytest

from mnistlab.data.mirrors import default_mirror, parse_mirror
from mnistlab.errors import UserError


def test_default_mirror_argument_then_environment(monkeypatch):
    monkeypatch.setenv("MNISTLAB_MIRROR", "/from/env")
    assert default_mirror("/given") == "/given"
    assert default_mirror() == "/from/env"
    monkeypatch.delenv("MNISTLAB_MIRROR")
    assert default_mirror() is None


def test_folders_and_file_urls_give_the_folder(tmp_path):
    assert parse_mirror(None, "MNIST") is None
    assert parse_mirror(str(tmp_path), "MNIST") == tmp_path
    assert parse_mirror(tmp_path.as_uri(), "MNIST") == tmp_path
    assert parse_mirror(f"file://localhost{tmp_path}", "MNIST") == tmp_path


def test_http_prefixes_end_in_one_slash():
    assert parse_mirror("https://example.org/mnist", "MNIST") == "https://example.org/mnist/"
    assert parse_mirror("http://example.org:8080/m//", "MNIST") == "http://example.org:8080/m/"


@pytest.mark.parametrize(
    "mirror, why",
    [
        ("ftp://example.org/m", "unsupported scheme 'ftp'"),
        ("http://example.org:99999/", "is not a valid URL"),
        ("https://example.org/m?x=1", "?query or #fragment"),
        ("https://example.org/a b", "space or control character"),
        ("http:///m", "names no host"),
        ("file://server/share", "names the host 'server'"),
        ("://nothing", "no scheme before '://'"),
    ],
)
def test_bad_mirrors_are_refused_saying_why(mirror, why):
    with pytest.raises(UserError, match="expected a folder") as e:
        parse_mirror(mirror, "MNIST")
    assert why in str(e.value)


def test_missing_folders_and_files_are_refused(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        parse_mirror(str(tmp_path / "nowhere"), "MNIST")
    (tmp_path / "f").write_text("")
    with pytest.raises(UserError, match="is not a folder"):
        parse_mirror((tmp_path / "f").as_uri(), "MNIST")
