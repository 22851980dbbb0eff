"""recipe_schema.py: what each Recipe setting may hold, in one line per mistake."""

from __future__ import annotations

import dataclasses

import pytest

from mnistlab.recipe_schema import Settings, check_setting


@pytest.mark.parametrize(
    "name, value",
    [("batch_size", 1024), ("limit_train", None), ("lr", 0.01), ("momentum", 0.0), ("mean", None), ("amp", "off"),
     ("device", "cuda:1"), ("compile", False), ("dataset", "mnist"), ("dataset", "folder:x"), ("init", None),
     ("crops", None), ("crops", "runs/crops.npz"),
     ("name", "mine"), ("name", "fast99.v2_x-1"), ("name", "n" * 100), ("tuned", {"study": "s", "trial": 3})],
)  # fmt: skip
def test_what_a_recipe_may_hold(name, value):
    assert check_setting(name, value) is None


@pytest.mark.parametrize(
    "name, value, says",
    [("batch_size", 0, "must be a whole number from 1 to 65,536, not 0"),
     ("batch_size", 2.0, "whole number"),
     ("seed", 2**64, "whole number"),
     ("limit_train", 0, "or null"),
     ("lr", 1e308, "must be a number in (0, 10], not 1e+308"),
     ("lr", float("nan"), "(0, 10]"),
     ("momentum", -0.1, "[0, 1]"),
     ("std", 0.0, "(0, 1] or null"),
     ("amp", "fp8", "must be one of"),
     ("device", "cuda:x", "must be one of"),
     ("compile", "yes", "must be true or false"),
     ("dataset", "folder:", "or folder:PATH"),
     ("init", "", "run folder or weights file"),
     ("crops", 3, "crop set (.npz of scripts/make_crops.py), or null"),
     ("name", "", "letters, digits"),
     ("name", "../up", "not starting with '.'"),
     ("name", "a/b", "it names the run folder"),
     ("name", "red\x1b[31m", "'red\\x1b[31m'"),
     ("name", "n" * 101, "1 to 100"),
     ("name", "x" * 10**6, "..."),
     ("tuned", {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}, "more than 8 levels deep")],
)  # fmt: skip
def test_each_mistake_is_one_line(name, value, says):
    problem = check_setting(name, value)
    assert problem is not None and says in problem and "\n" not in problem and len(problem) < 300, problem


def test_each_setting_is_declared_whole_in_its_field():
    """Each field carries its range (its default inside it) and its option, if any; the options' ranks, their
    order in `mnistlab train --help`, are 1, 2, 3... with none twice."""
    fields = dataclasses.fields(Settings)
    for f in fields:
        assert callable(f.metadata["range"]), f.name
        assert check_setting(f.name, f.default) is None, f"{f.name}'s default {f.default!r} is outside its range"
    ranks = sorted(f.metadata["option"].rank for f in fields if f.metadata["option"])
    assert ranks == list(range(1, len(ranks) + 1))
