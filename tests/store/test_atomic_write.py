"""`atomic_write`: a file is replaced whole or not at all (a write that fails midway keeps the old one byte for byte
and leaves no temporary file), and a link is replaced, never written through."""

from __future__ import annotations

import pytest
from conftest import file_size_limit

from mnistlab.errors import UserError
from mnistlab.store.atomic_write import real_folder, write_bytes


def test_a_write_that_fails_midway_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    good = tmp_path / "model.onnx"
    good.write_bytes(b"good" * 1000)
    with file_size_limit(64 * 1024), pytest.raises(UserError) as e:
        write_bytes(good, b"\x01" * 200_000)  # the first 64 KiB are written, then the write fails
    assert "cannot write" in str(e.value) and "left as it was" in str(e.value) and "\n" not in str(e.value)
    assert good.read_bytes() == b"good" * 1000
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left


def test_a_new_file_that_cannot_be_written_leaves_nothing(tmp_path):
    with file_size_limit(1024), pytest.raises(UserError, match="nothing was left behind"):
        write_bytes(tmp_path / "new.onnx", b"\x01" * 10_000)
    assert list(tmp_path.iterdir()) == []


def test_a_link_is_replaced_and_what_it_pointed_to_is_untouched(tmp_path):
    outside, inside = tmp_path / "victim.txt", tmp_path / "site"
    outside.write_text("my notes")
    inside.mkdir()
    (inside / "index.html").symlink_to(outside)
    write_bytes(inside / "index.html", b"<html>")
    assert outside.read_text() == "my notes"
    assert not (inside / "index.html").is_symlink() and (inside / "index.html").read_bytes() == b"<html>"


def test_a_linked_folder_is_replaced_by_a_folder_of_its_own(tmp_path):
    elsewhere, site = tmp_path / "elsewhere", tmp_path / "site"
    elsewhere.mkdir()
    (elsewhere / "app.js").write_text("keep")
    site.mkdir()
    (site / "static").symlink_to(elsewhere, target_is_directory=True)
    write_bytes(real_folder(site / "static") / "app.js", b"new")
    assert (elsewhere / "app.js").read_text() == "keep" and not (site / "static").is_symlink()
    assert (site / "static" / "app.js").read_bytes() == b"new"
    (site / "file").write_text("x")
    with pytest.raises(UserError, match="is a file where a folder belongs"):
        real_folder(site / "file")


def test_writes_their_disk_cannot_hold_are_refused_before_any_is_written(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from mnistlab.store.atomic_write import check_space

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 3_000_000, 3_000_000))
    check_space({tmp_path / "a": 2_000_000, tmp_path / "new" / "b": 1_000_000})  # 3 MB of 3 MB free: fits
    with pytest.raises(UserError, match=r"not enough space: 3\.0 MB to write, 3\.0 MB free") as e:
        check_space({tmp_path / "a": 2_000_000, tmp_path / "new" / "b": 1_000_001})  # summed over one disk
    assert "nothing was written" in str(e.value) and list(tmp_path.iterdir()) == []
