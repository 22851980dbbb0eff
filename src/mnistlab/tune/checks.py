"""What `mnistlab tune` checks before it uses a study: its --storage URL (shown anywhere only with its secrets hidden),
an SQLite file that must be Optuna's, and the search's settings, which must be the study's own."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sqlite3
from pathlib import Path
from urllib.parse import quote, unquote

from mnistlab.errors import UserError, one_line
from mnistlab.recipes import Recipe

HIDDEN = "***"
# query keys whose values are hidden wherever a URL is shown: libpq's password, sslpassword, a driver's secret,
# token or key; matched as parts of the key, case-insensitively
SECRET_KEYS = re.compile(r"pass|pwd|secret|token|key", re.I)
SHORT = 4  # a secret shorter than this is hidden in a driver's message only where it stands alone (not inside a word)
OPTUNA_TABLES = {"studies", "version_info"}  # tables every Optuna storage has, whatever its schema version
# the settings that define a study's search, each with the flag that sets it; the recipe's other fields are named as
# such. The device may differ: a study's workers may be a GPU machine and a CPU one.
FLAGS = {"objective": "--objective", "pruner": "--pruner", "evals_per_epoch": "--evals-per-epoch"}
RECIPE_FLAGS = ("epochs", "seed", "val", "limit_train", "limit_test")
FREE = ("device",)


def _parse(url: str):
    """SQLAlchemy's URL object for `url`, or None if it does not parse."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url)
    except Exception:  # ArgumentError, or ValueError for a port that is no number
        return None


def _ambiguous(u) -> bool:
    """A password holding a raw '@' (or a '/' after one): the parser took a piece of it for the host or database."""
    return u.password is not None and "@" in f"{u.host or ''}{u.database or ''}"


def shown(url: str) -> str:
    """`url` fit to print or log: its password and secret query values as ***; one that does not parse, or whose
    password confuses the parser, as its scheme alone ('postgresql://...'), or '<storage URL>'."""
    u = _parse(url)
    if u is None or _ambiguous(u):
        scheme = re.match(r"([A-Za-z][\w+.-]*)://", url)
        return f"{scheme.group(1)}://..." if scheme else "<storage URL>"
    query = {k: HIDDEN if SECRET_KEYS.search(k) else v for k, v in u.query.items()}
    return u.set(query=query).render_as_string(hide_password=True).replace(quote(HIDDEN, safe=""), HIDDEN)


def _secrets(url: str) -> set[str]:
    """Every text in `url` that may be a secret (the password, secret query values, and for a URL that does not
    parse its whole user part), as written and percent-decoded."""
    found = {m.group(2) for m in re.finditer(r"([^?&=/]+)=([^&]*)", url) if SECRET_KEYS.search(m.group(1))}
    rest = url.split("://", 1)[-1]
    u = _parse(url)
    if u is not None and u.password is not None:
        found.add(u.password)
    if "@" in rest and (u is None or _ambiguous(u) or u.password is not None):
        user = rest.rsplit("@", 1)[0]  # the user part runs to the last '@': a parser may stop at another
        found |= {user, user.split(":", 1)[-1], *re.split(r"[@:/]", user.split(":", 1)[-1])}
    if u is None or _ambiguous(u):
        found.add(url)
    found |= {unquote(s) for s in found} | {quote(s, safe="") for s in found}
    return {s for s in found if s}


def scrub(text: str, url: str) -> str:
    """`text` (a driver's error) with every secret of `url` replaced by ***, the URL itself by its `shown` form."""
    text = text.replace(url, shown(url)) if url else text
    for secret in sorted(_secrets(url), key=len, reverse=True):
        if len(secret) >= SHORT:
            text = text.replace(secret, HIDDEN)
        else:
            text = re.sub(rf"(?<![\w%]){re.escape(secret)}(?!\w)", HIDDEN, text)
    return text


@contextlib.contextmanager
def storage_errors(url: str):
    """An error of the database under Optuna (SQLAlchemy's, or Optuna's storage error that wraps one) raised in
    the block: a one-line UserError, the URL's secrets hidden."""
    import optuna
    import sqlalchemy.exc

    try:
        yield
    except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as e:
        cause = e.__cause__ or e.__context__
        detail = f"{one_line(e)}{f' ({one_line(cause)})' if cause is not None else ''}"
        raise UserError(f"cannot use --storage {shown(url)}: {scrub(detail, url)}") from None


def check_url(url: str) -> None:
    """A URL that does not parse, or whose password holds a raw '@' (the parser would take a piece of it for the
    host, and connect there), is refused at once: before any connection is tried, and without retrying."""
    u = _parse(url)
    if u is None:
        raise UserError(
            f"--storage {shown(url)} is not a database URL: give dialect[+driver]://user:password@host[:port]/db "
            "(e.g. postgresql://...), or sqlite:///FILE"
        )
    if _ambiguous(u):
        raise UserError(
            f"--storage {shown(url)}: its password seems to hold an '@'; write it as %40 (and any '/', ':' or "
            "'%' as %2F, %3A, %25)"
        )


def check_sqlite(url: str) -> None:
    """An SQLite file that exists must be empty or Optuna's: another program's database is refused (Optuna would
    add its tables to it, or fail on a table of the same name), read-only, before anything writes to it."""
    u = _parse(url)
    if u is None or u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return
    path = Path(u.database)
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            columns = {row[1] for row in db.execute("PRAGMA table_info(studies)")}
        finally:
            db.close()
    except sqlite3.OperationalError:
        return  # locked by a worker writing to it, say: not this check's to judge; Optuna waits or says so
    except sqlite3.DatabaseError as e:
        raise UserError(
            f"{path} is not an SQLite database ({one_line(e)}); name another --study or --storage"
        ) from None
    if tables and not (OPTUNA_TABLES <= tables and "study_name" in columns):
        listed = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise UserError(
            f"{path} is another program's database, not an Optuna study (it holds the tables {listed}); "
            "name another --study or --storage"
        )


def search(objective, start: Recipe, pruner: str, evals_per_epoch: int) -> dict:
    """The settings that define a study's search (stored with it when it is created, as its user attr 'search'):
    the objective, the pruner and its evaluations per epoch, and the starting recipe (its epochs are the budget)."""
    import json

    recipe = {k: v for k, v in dataclasses.asdict(start).items() if k not in FREE}
    settings = {"objective": str(objective), "pruner": pruner, "evals_per_epoch": evals_per_epoch, "recipe": recipe}
    return json.loads(json.dumps(settings))  # as the storage gives it back (tuples as lists)


def check_study(name: str, attrs: dict, search: dict) -> None:
    """The study `name` (its user attrs `attrs`; {} if new) may hold this command's `search`; one made before its
    search was stored is checked for its objective only."""
    if "search" in attrs:
        check_same_search(name, attrs["search"], search)
    elif attrs.get("objective", search["objective"]) != search["objective"]:
        raise UserError(
            f"study {name!r} optimises {attrs['objective']}, not {search['objective']}: give that --objective, or "
            "another --study"
        )


def check_same_search(name: str, was: dict, now: dict) -> None:
    """A study is one search: `now` (this command's `search`) must be `was` (the study's); else a one-line
    UserError naming each setting that differs."""
    differ = [f"{flag} {was.get(k)} (this command: {now[k]})" for k, flag in FLAGS.items() if was.get(k) != now[k]]
    a, b = was.get("recipe") or {}, now["recipe"]
    if a.get("name") != b["name"]:
        differ.append(f"--recipe {a.get('name')} (this command: {b['name']})")
        keys = list(RECIPE_FLAGS)  # the recipes' other differences follow from their names
    else:
        keys = sorted((set(a) | set(b)) - {"name"})
    for k in keys:
        if a.get(k) != b.get(k):
            label = "--" + k.replace("_", "-") if k in RECIPE_FLAGS else f"the recipe's {k}"
            differ.append(f"{label} {a.get(k)} (this command: {b.get(k)})")
    if differ:
        raise UserError(
            f"study {name!r} was created for another search: {'; '.join(differ)}. One study is one search: give "
            "its settings, or name another --study"
        )
