"""mnistlab.data.datafolder: where the data folder is, its records, and half-written files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mnistlab.data.datafolder import clear_stale_parts, default_data_dir, part, read_record, write_record


def test_default_data_dir_argument_then_environment_then_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MNISTLAB_DATA", str(tmp_path / "env"))
    assert default_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert default_data_dir() == tmp_path / "env"
    monkeypatch.delenv("MNISTLAB_DATA")
    assert default_data_dir() == Path.home() / ".cache" / "mnistlab"


def test_part_names_the_writing_process(tmp_path):
    assert part(tmp_path / "a.json") == tmp_path / f"a.json.{os.getpid()}.part"


def test_records_round_trip_and_unreadable_ones_are_empty(tmp_path):
    files = {"train-images-idx3-ubyte.gz": {"md5": "abc", "size": 3}}
    write_record(tmp_path, "verified", "mnist", files)
    assert read_record(tmp_path, "verified", "mnist") == files
    assert json.loads((tmp_path / "mnistlab-verified-mnist.json").read_text())["dataset"] == "mnist"
    assert read_record(tmp_path, "extracted", "mnist") == {}
    (tmp_path / "mnistlab-extracted-mnist.json").write_text("{not json")
    assert read_record(tmp_path, "extracted", "mnist") == {}
    assert not list(tmp_path.glob("*.part"))


def test_clear_stale_parts_keeps_those_of_live_processes(tmp_path):
    stale = tmp_path / f"x.gz.{2**22 + 1}.part"  # above Linux's largest pid_max: no process has it
    live = part(tmp_path / "y.gz")
    other = tmp_path / "z.part"  # not one of ours: no pid in its name
    for p in (stale, live, other):
        p.write_bytes(b"half")
    clear_stale_parts(tmp_path)
    assert not stale.exists() and live.exists() and other.exists()
