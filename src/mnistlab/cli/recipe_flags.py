"""The options of `mnistlab train` that set a recipe's fields, made from the fields' `Option`s (recipe_schema), their
help showing each recipe's value."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any

from mnistlab.cli import args as types
from mnistlab.recipe_schema import Choice, Option, Real, Switch, Whole
from mnistlab.recipes import ABOUT, RECIPES, Recipe, get_recipe


@dataclass(frozen=True)
class Flag:
    """`--FIELD` (underscores as dashes): sets the recipe field FIELD; None (not given) keeps the recipe's."""

    field: str
    help: str
    type: Any = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    none: str = "none"  # what the field's None means, in the help
    switch: bool = False  # an option without a value that turns the field on

    @property
    def option(self) -> str:
        return "--" + self.field.replace("_", "-")


def _flag(field: dataclasses.Field) -> Flag:
    """The option of a recipe field that has one (recipe_schema's `Option`), its type or choices from its range."""
    option, held = field.metadata["option"], field.metadata["range"]
    choices = held.options if isinstance(held, Choice) else None
    switch = isinstance(held, Switch)
    help = option.help.replace("%", "%%")
    return Flag(field.name, help, _type(field.name, held, option), option.metavar, choices, option.none, switch)


def _type(name: str, held, option: Option) -> Any:
    """The argparse type that reads a value in the range `held` (the range itself checks it further, in the recipe)."""
    if isinstance(held, Whole):
        return types.int_at_least(held.lo)
    if isinstance(held, Real):
        if held.lo != 0:
            raise TypeError(f"{name}: no option type for a real range from {held.lo}")
        if option.whole_as_int:
            return types.epochs
        return types.non_negative_float if held.closed else types.positive_float
    return None


# The options of the recipe fields that have one, in the order of their `rank` (their place in --help)
FLAGS = tuple(
    _flag(f)
    for f in sorted(dataclasses.fields(Recipe), key=lambda f: getattr(f.metadata["option"], "rank", 0))
    if f.metadata["option"]
)


def recipe_name_or_file(text: str) -> str:
    """An argparse type: a recipe's name, or a recipe .json file (one `mnistlab tune --best` wrote)."""
    if text in RECIPES or text.endswith(".json"):
        return text
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(RECIPES)}, or a FILE.json)")


def add_recipe_flags(p: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """--recipe, then one option per recipe field in FLAGS (or those of them in `only`), each help ending in the
    values the recipes give it."""
    about = "; ".join(f"{name}: {ABOUT[name]}" for name in RECIPES).replace("%", "%%")
    p.add_argument(
        "--recipe",
        type=recipe_name_or_file,
        metavar="NAME|FILE.json",
        help=f"{about}; or a recipe file, such as `mnistlab tune --best` writes (default: default)",
    )
    for f in FLAGS if only is None else [f for f in FLAGS if f.field in only]:
        help = f"{f.help} ({defaults(f)})"
        if f.switch:
            p.add_argument(f.option, action="store_true", default=None, help=help)
        else:
            p.add_argument(f.option, type=f.type, metavar=f.metavar, choices=f.choices, help=help)


def defaults(f: Flag) -> str:
    """'default: 5, or 0.4 for fast99, 10 for best and robust': the default recipe's value, then the others'."""
    base = getattr(RECIPES["default"], f.field)
    others: dict[str, list[str]] = {}
    for name, recipe in RECIPES.items():
        value = getattr(recipe, f.field)
        if value != base:
            others.setdefault(_show(value, f), []).append(name)
    rest = ", ".join(f"{value} for {_and(names)}" for value, names in others.items())
    return (f"default: {_show(base, f)}" + (f", or {rest}" if rest else "")).replace("%", "%%")


def _show(value, f: Flag) -> str:
    if value is None:
        return f.none
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def given(args: argparse.Namespace, keep: tuple[str, ...] = ()) -> list[str]:
    """The recipe options given on the command line (--recipe first), but for the fields in `keep`."""
    flags = [f for f in FLAGS if f.field not in keep]
    pairs = [("--recipe", args.recipe), *((f.option, getattr(args, f.field, None)) for f in flags)]
    return [option for option, value in pairs if value is not None]


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """The validated Recipe that `mnistlab train`'s options ask for (a one-line UserError if they cannot)."""
    overrides = {f.field: getattr(args, f.field, None) for f in FLAGS}
    if args.recipe and args.recipe.endswith(".json"):
        changes = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(Recipe.load(args.recipe), **changes).validate()
    return get_recipe(args.recipe or "default", **overrides)
