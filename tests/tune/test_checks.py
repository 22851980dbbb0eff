"""`tune_checks`: a --storage URL shown without its secrets (whatever form it takes), a driver's error scrubbed of
them, another program's SQLite file refused unread-into, and one search per study."""

from __future__ import annotations

import sqlite3
from urllib.parse import quote

import pytest

from mnistlab.errors import UserError
from mnistlab.recipes import get_recipe
from mnistlab.tune import checks as tune_checks
from mnistlab.tune.trial import Objective

SECRET = "S3cretPW"
FORMS = [  # the password in the query, in a URL without its scheme, with a raw '@', with '@' as %40, and usual
    (
        f"postgresql://127.0.0.1:1/db?user=alice&password={SECRET}",
        "postgresql://127.0.0.1:1/db?password=***&user=alice",
    ),
    (f"alice:{SECRET}@db.example/db", "<storage URL>"),
    (f"postgresql://alice:p@{SECRET}@127.0.0.1:1/db", "postgresql://..."),
    (f"postgresql://alice:p@b/{SECRET}@127.0.0.1:1/db", "postgresql://..."),
    (f"postgresql://alice:p%40{SECRET}@127.0.0.1:1/db", "postgresql://alice:***@127.0.0.1:1/db"),
    (f"postgresql+psycopg://alice:{SECRET}@127.0.0.1:1/db", "postgresql+psycopg://alice:***@127.0.0.1:1/db"),
    (f"postgresql://alice:{SECRET}@127.0.0.1:x/db", "postgresql://..."),  # a port that is no number
]
PASSWORDS = [SECRET, SECRET, f"p@{SECRET}", f"p@b/{SECRET}", f"p@{SECRET}", SECRET, SECRET]


@pytest.mark.parametrize(("url", "want"), FORMS)
def test_a_storage_url_is_shown_without_its_secrets(url, want):
    assert tune_checks.shown(url) == want


@pytest.mark.parametrize(("url", "password"), list(zip([url for url, _ in FORMS], PASSWORDS)))
def test_a_drivers_error_is_scrubbed_of_the_password_in_every_form(url, password):
    error = f"cannot connect to {url}: password {password} ({quote(password, safe='')}) refused for alice"
    scrubbed = tune_checks.scrub(error, url)
    assert SECRET not in scrubbed and "***" in scrubbed and "refused for alice" in scrubbed


def test_the_pieces_a_parser_takes_for_the_host_are_hidden_too():
    url = f"postgresql://alice:p@{SECRET}@127.0.0.1:1/db"  # parsed: password 'p', host 'S3cretPW@127.0.0.1'
    error = f"failed to resolve host '{SECRET}@127.0.0.1': Name or service not known"
    assert SECRET not in tune_checks.scrub(error, url)


def test_a_short_password_is_hidden_where_it_stands_alone_only():
    url = "postgresql://alice:ab1@127.0.0.1:1/db"
    assert tune_checks.scrub("auth ab1 failed; tab1 column", url) == "auth *** failed; tab1 column"
    assert tune_checks.shown("sqlite:////tmp/s/study.db") == "sqlite:////tmp/s/study.db"  # nothing to hide


def test_a_raw_at_in_a_password_is_refused_before_any_connection():
    with pytest.raises(UserError, match="write it as %40") as e:
        tune_checks.check_url(f"postgresql://alice:p@{SECRET}@127.0.0.1:1/db")
    assert SECRET not in str(e.value)
    tune_checks.check_url(f"postgresql://alice:p%40{SECRET}@127.0.0.1:1/db")  # encoded: fine


def make_db(path, *tables: str) -> bytes:
    db = sqlite3.connect(path)
    for table in tables:
        db.execute(f"CREATE TABLE {table} (x TEXT)")
    db.commit()
    db.close()
    return path.read_bytes()


@pytest.mark.parametrize("tables", [("photos",), ("studies", "trials")])
def test_another_programs_sqlite_file_is_refused_and_left_as_it_was(tmp_path, tables):
    path = tmp_path / "study.db"
    before = make_db(path, *tables)
    with pytest.raises(UserError, match="another program's database"):
        tune_checks.check_sqlite(f"sqlite:///{path}")
    assert path.read_bytes() == before
    path.write_text("not a database")
    with pytest.raises(UserError, match="is not an SQLite database"):
        tune_checks.check_sqlite(f"sqlite:///{path}")


def test_an_optuna_file_a_new_one_and_other_databases_pass(tmp_path):
    optuna = pytest.importorskip("optuna")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    tune_checks.check_sqlite(url)  # not there yet
    optuna.create_study(storage=url, study_name="s")
    tune_checks.check_sqlite(url)
    tune_checks.check_sqlite("postgresql://127.0.0.1:1/db")  # not SQLite: not this check's to judge


def test_a_second_search_on_one_study_is_refused_naming_what_differs():
    was = tune_checks.search(Objective(), get_recipe("default", epochs=0.2), "median", 5)
    same = tune_checks.search(Objective(), get_recipe("default", epochs=0.2), "median", 5)
    tune_checks.check_same_search("s", was, same)
    device = get_recipe("default", epochs=0.2, device="cpu")
    tune_checks.check_same_search("s", was, tune_checks.search(Objective(), device, "median", 5))  # a worker's own
    other = tune_checks.search(Objective(0.98), get_recipe("robust", epochs=0.4, seed=3), "median", 2)
    with pytest.raises(UserError) as e:
        tune_checks.check_same_search("s", was, other)
    message = str(e.value)
    parts = ["--objective accuracy (this command: time-to:0.98)", "--recipe default (this command: robust)"]
    parts += ["--epochs 0.2 (this command: 0.4)", "(this command: 3)", "--evals-per-epoch 5 (this command: 2)"]
    for part in parts:
        assert part in message, message
    lr = tune_checks.search(Objective(), get_recipe("default", epochs=0.2, lr=0.02), "median", 5)
    with pytest.raises(UserError, match=r"the recipe's lr"):
        tune_checks.check_same_search("s", was, lr)


def test_a_study_made_before_its_search_was_stored_is_checked_for_its_objective():
    now = tune_checks.search(Objective(), get_recipe("default"), "median", 5)
    tune_checks.check_study("s", {}, now)  # new
    tune_checks.check_study("s", {"objective": "accuracy", "budget": 3}, now)
    with pytest.raises(UserError, match="optimises time-to:0.99, not accuracy"):
        tune_checks.check_study("s", {"objective": "time-to:0.99"}, now)
