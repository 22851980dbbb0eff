"""`mnistlab tune`: the objective, the search space, studies on SQLite (two local workers; a SIGKILLed tune resumes)
and on PostgreSQL (two worker processes on one study), the best trial as a recipe for `mnistlab train`."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import one_line_error, run_cli, run_main

optuna = pytest.importorskip("optuna", reason="optuna is not installed (pip install 'mnistlab[tune]')")
import postgres  # noqa: E402  (tests/postgres.py)

from mnistlab.errors import UserError  # noqa: E402
from mnistlab.recipe_schema import SEARCH_SPACE  # noqa: E402
from mnistlab.recipes import get_recipe  # noqa: E402
from mnistlab.tune.trial import Objective, sample, start_params  # noqa: E402

TINY = ["--limit-train", 400, "--epochs", 0.2, "--val", 200, "--device", "cpu"]  # 80 images a trial


def test_objectives_parse_and_a_bad_one_is_a_user_error():
    assert Objective.parse("accuracy").direction == "maximize"
    assert Objective.parse("time-to:0.988") == Objective.parse("time-to:98.8") == Objective(0.988)
    assert Objective(0.988).direction == "minimize" and str(Objective(0.988)) == "time-to:0.988"
    for bad in ("speed", "time-to:", "time-to:abc", "time-to:0", "time-to:100", "time:0.9"):
        with pytest.raises(UserError, match="--objective must be"):
            Objective.parse(bad)


def test_trials_sample_inside_the_space_and_the_start_is_clipped_into_it():
    study = optuna.create_study()
    start = get_recipe("default")
    for _ in range(5):
        r = sample(study.ask(), start, budget=0.8)
        assert 0.2 <= r.epochs <= 0.8 and r.batch_size in (32, 64, 128, 256) and 1e-3 <= r.lr <= 2e-2
        assert r.outliers == start.outliers  # the robust settings vary only for the robust augmentation
    params = start_params(start, 0.8)
    assert params["epochs"] == pytest.approx(0.8) and params["lr"] == start.lr and "outliers" not in params
    robust = start_params(get_recipe("robust"), 2)
    assert {"outliers", "outlier_weight"} <= robust.keys()
    assert {d.name for d in SEARCH_SPACE} >= {"lr", "batch_size", "epochs", "pct_start", "label_smoothing"}


def trials_of(url: str, name: str):
    return optuna.load_study(study_name=name, storage=url).get_trials()


def assert_each_trial_once(trials, at_least: int):
    numbers = sorted(t.number for t in trials)
    assert numbers == list(range(len(trials))), numbers  # no trial recorded twice, none missing
    finished = [t for t in trials if t.state.is_finished() and "lost" not in t.user_attrs]
    assert len(finished) >= at_least, [(t.number, t.state, t.user_attrs.get("error")) for t in trials]


def test_two_local_workers_share_a_sqlite_study_and_its_best_recipe_trains(tmp_path, env):
    r = run_cli("tune", "--study", "s", "--trials", 3, "--workers", 2, *TINY, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    folder = tmp_path / "runs" / "tune-s"
    trials = trials_of(f"sqlite:///{folder / 'study.db'}", "s")
    assert_each_trial_once(trials, at_least=3)
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2  # both workers ran trials
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["trials"] == len(trials) and summary["best"]["trial"] is not None
    assert (folder / "history.png").stat().st_size > 0 and "Done:" in r.stdout

    best = tmp_path / "best.json"
    r = run_main("tune", "--study", "s", "--best", best, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    recipe = json.loads(best.read_text())
    assert recipe["tuned"]["study"] == "s" and recipe["tuned"]["trial"] == summary["best"]["trial"]
    assert recipe["val"] is None and recipe["tuned"]["val"] == 200  # trained for real: on all of train, tested
    run = tmp_path / "run"
    r = run_main("train", "--recipe", best, "--limit-train", 200, "--limit-test", 200, "--out", run, "--no-plots",
                 "--device", "cpu", "--quiet", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    from mnistlab.store.checkpoints import read_safetensors

    card = read_safetensors(run / "model.safetensors")[1]
    assert card["recipe"]["tuned"]["trial"] == recipe["tuned"]["trial"] and "val_acc" in card["recipe"]["tuned"]


def progress(db: Path) -> list[tuple[int, str, bool]]:
    """(number, state, has a recipe) of each trial in the study file `db`, read with SQLite in read-only mode: a
    poll that can neither create the file nor its tables, nor hold a write lock, while a tune writes to it."""
    import sqlite3

    if not db.is_file():
        return []
    con = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute(
            "SELECT t.number, t.state, EXISTS (SELECT 1 FROM trial_user_attributes a WHERE a.trial_id = t.trial_id "
            "AND a.key = 'recipe') FROM trials t ORDER BY t.number"
        ).fetchall()
    except sqlite3.OperationalError:  # no tables yet, or locked for the moment: the next poll
        return []
    finally:
        con.close()
    return [(int(n), str(state), bool(recipe)) for n, state, recipe in rows]


def test_a_killed_tune_resumes_where_it_stopped(tmp_path, env):
    args = [sys.executable, "-m", "mnistlab", "tune", "--study", "k", "--trials", 2, "--objective", "time-to:0.01"]
    args += ["--limit-train", 2000, "--epochs", 1, *TINY[4:]]  # longer trials (500 to 2,000 images), to kill one
    log = (tmp_path / "tune.err").open("w")
    proc = subprocess.Popen(list(map(str, args)), cwd=tmp_path, env=env, stderr=log)
    db = tmp_path / "runs" / "tune-k" / "study.db"
    url = f"sqlite:///{db}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:  # until a trial is done and the next one running
        time.sleep(0.2)
        trials = progress(db)
        if any(state in ("COMPLETE", "PRUNED", "FAIL") for _, state, _ in trials) and any(
            number > 0 and state == "RUNNING" and recipe for number, state, recipe in trials
        ):
            break
    assert proc.poll() is None, f"the tune ended first ({proc.returncode}): {(tmp_path / 'tune.err').read_text()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()
    running = [t.number for t in trials_of(url, "k") if t.state == optuna.trial.TrialState.RUNNING]
    assert running, "the kill should have left a trial running"
    r = run_cli(*args[3:], env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    trials = trials_of(url, "k")
    assert_each_trial_once(trials, at_least=2)
    lost = [t for t in trials if "lost" in t.user_attrs]
    assert [t.number for t in lost] == running and all(t.state.name == "FAIL" for t in lost)
    assert all(t.value > 0 for t in trials if t.state.name == "COMPLETE")  # seconds of training


@pytest.fixture(scope="module")
def pg_url():
    reason = postgres.why_not()
    if reason:
        pytest.skip(reason)
    with postgres.cluster() as url:
        yield url


def test_two_worker_processes_share_one_postgresql_study(tmp_path, env, pg_url):
    # trials of 800 images (TINY's 80 took 0.3 s: one worker could finish all three before the other had imported)
    longer = ["--limit-train", 1600, "--epochs", 0.5, "--val", 200, "--device", "cpu"]
    cmd = [sys.executable, "-m", "mnistlab", "tune", "--study", "pg", "--trials", 4, "--storage", pg_url, *longer]
    procs = [
        subprocess.Popen(list(map(str, cmd)), cwd=tmp_path / d, env=env, stderr=subprocess.PIPE, text=True)
        for d in ("a", "b")
        if (tmp_path / d).mkdir() is None
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    trials = trials_of(pg_url, "pg")
    assert_each_trial_once(trials, at_least=4)
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2
    r = run_main("tune", "--study", "pg", "--storage", pg_url, "--best", tmp_path / "best.json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "best.json").read_text())["tuned"]["study"] == "pg"


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--study", "x", "--trials", 1, "--objective", "fast"], "--objective must be accuracy or time-to:VALUE"),
        (["--study", "nosuch", "--best", "b.json"], "no study 'nosuch'"),
        (["--study", "x", "--trials", 1, "--storage", "postgresql://u:secret@127.0.0.1:1/db"], "cannot open"),
        (["--study", "x", "--trials", 1, "--storage", "nosuchdb://x"], "cannot open --storage"),
        (["--study", "x"], "give --trials N"),
    ],
)
def test_mistakes_are_one_line(args, needle, env, tmp_path):
    line = one_line_error(run_main("tune", *args, env=env, cwd=tmp_path))
    assert needle in line and "secret" not in line
    assert not (Path(tmp_path) / "runs" / "tune-nosuch").exists()


def test_a_failing_trial_is_recorded_with_its_one_line_error_and_the_next_one_starts(monkeypatch):
    from mnistlab.train import training
    from mnistlab.tune import study as tune_study
    from mnistlab.tune.trial import Trainer

    def fit(*args, **kw):
        raise RuntimeError("the kernel\nfailed")

    monkeypatch.setattr(training, "fit", fit)
    study = optuna.create_study(direction="maximize")
    tune_study.work(study, Trainer(Objective(), budget=0.1), get_recipe("default", epochs=0.1), trials=2)
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]  # counted: the loop ends after 2
    assert all(t.user_attrs["error"] == "the kernel failed" for t in study.trials)
    assert all(tune_study.counted(t) for t in study.trials)


def test_a_trial_whose_worker_elsewhere_stopped_beating_is_failed_and_its_place_refilled(tmp_path, monkeypatch):
    """A worker on another machine that dies leaves a RUNNING trial that this host cannot judge (no pid of its
    own): once its heartbeat is GRACE_S old, the next worker fails it, and it does not count towards --trials."""
    from mnistlab.tune import study as tune_study

    monkeypatch.setattr(tune_study, "HEARTBEAT_S", 1)
    monkeypatch.setattr(tune_study, "GRACE_S", 1)
    storage = tune_study.storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, direction="maximize")
    gone = study.ask()
    gone.set_user_attr("worker", {"host": "another-machine", "pid": 1})
    storage.record_heartbeat(gone._trial_id)
    time.sleep(2.5)
    tune_study.work(study, lambda trial, start: 0.5, get_recipe("default"), trials=1)
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "COMPLETE"], states
    assert not tune_study.counted(study.trials[0]) and tune_study.counted(study.trials[1])


PASSWORD = "S3cretPW"
STORAGE_FORMS = [  # issue 28: the password in the query, a URL without its scheme, a raw '@' in it, '@' as %40
    f"postgresql://127.0.0.1:1/db?user=alice&password={PASSWORD}",
    f"alice:{PASSWORD}@db.example/db",  # never connected to: it does not parse
    f"postgresql://alice:p@{PASSWORD}@127.0.0.1:1/db",  # refused before a connection to host 'S3cretPW@127.0.0.1'
    f"postgresql://alice:p%40{PASSWORD}@127.0.0.1:1/db",  # port 1 refuses: the driver's own error is shown
    f"postgresql://alice:{PASSWORD}@127.0.0.1:1/db",
]


@pytest.mark.parametrize("url", STORAGE_FORMS)
def test_a_storage_password_never_reaches_the_terminal(url, env, tmp_path):
    for args in (["--trials", 1], ["--best", "b.json"]):
        r = run_main("tune", "--study", "x", "--storage", url, *args, env=env, cwd=tmp_path)
        line = one_line_error(r)
        assert PASSWORD not in r.stderr + r.stdout and "--storage" in line, line
    assert not (tmp_path / "b.json").exists()


def test_a_storage_password_is_not_in_anything_a_tune_process_prints(env, tmp_path):
    r = run_cli("--debug", "tune", "--study", "x", "--trials", 1, "--storage", STORAGE_FORMS[3], env=env, cwd=tmp_path)
    assert r.returncode == 2 and "Connection refused" in r.stderr, r.stderr  # the driver's error, with --debug's
    assert PASSWORD not in r.stderr + r.stdout and "p%40" not in r.stderr and "p@" not in r.stderr


def untrained(name: str, *args, env, cwd) -> subprocess.CompletedProcess:
    """`mnistlab tune` on the study `name` that creates or checks it and starts no trial (--timeout passes at
    once)."""
    return run_main("tune", "--study", name, "--trials", 1, "--timeout", 1e-9, *TINY, *args, env=env, cwd=cwd)


def test_a_second_search_on_one_study_is_refused_in_one_line(env, tmp_path):
    assert untrained("s", env=env, cwd=tmp_path).returncode == 0
    db = tmp_path / "runs" / "tune-s" / "study.db"
    before = [(t.number, t.state, t.params) for t in trials_of(f"sqlite:///{db}", "s")]
    other = ["--recipe", "robust", "--epochs", 0.4, "--seed", 3]
    # a process: before the refusal, Optuna's own log line ("Using an existing study") must not be printed either
    line = one_line_error(run_cli("tune", "--study", "s", "--trials", 1, *TINY, *other, env=env, cwd=tmp_path))
    for part in ("--recipe default (this command: robust)", "--epochs 0.2 (this command: 0.4)", "(this command: 3)"):
        assert part in line, line
    assert [(t.number, t.state, t.params) for t in trials_of(f"sqlite:///{db}", "s")] == before
    assert untrained("s", env=env, cwd=tmp_path).returncode == 0  # the same search goes on


@pytest.mark.parametrize("tables", [("photos",), ("studies", "trials")])
def test_another_programs_sqlite_file_as_study_db_is_one_line_and_untouched(env, tmp_path, tables):
    import sqlite3

    db = tmp_path / "runs" / "tune-o" / "study.db"
    db.parent.mkdir(parents=True)
    con = sqlite3.connect(db)
    for table in tables:
        con.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, path TEXT)")
    con.commit()
    con.close()
    before = db.read_bytes()
    assert "another program's database" in one_line_error(untrained("o", env=env, cwd=tmp_path))
    assert "another program's database" in one_line_error(
        run_main("tune", "--study", "o", "--best", "b.json", env=env, cwd=tmp_path)
    )
    assert db.read_bytes() == before and sorted(p.name for p in db.parent.iterdir()) == ["study.db"]


def test_a_study_with_fewer_than_two_finished_trials_draws_its_plots_without_warnings(tmp_path, recwarn):
    """Issue 28: a successful tune printed Optuna's 'too few trials' warning (importances of one trial)."""
    from mnistlab.tune import study as tune_study

    study = optuna.create_study(direction="maximize")
    assert "importances.png" not in {p.name for p in tune_study.plots(study, tmp_path)}
    study.optimize(lambda t: t.suggest_float("lr", 1e-3, 1e-2) + t.suggest_float("pct_start", 0.1, 0.3), n_trials=1)
    assert {p.name for p in tune_study.plots(study, tmp_path)} >= {"history.png"}
    assert not [str(w.message) for w in recwarn if issubclass(w.category, UserWarning)]
    study.optimize(lambda t: t.suggest_float("lr", 1e-3, 1e-2) + t.suggest_float("pct_start", 0.1, 0.3), n_trials=1)
    assert "importances.png" in {p.name for p in tune_study.plots(study, tmp_path)}


def _ask_at(url: str, at: float, numbers) -> None:
    """A worker process: load the study, wait for the moment `at`, then ask for a trial (claiming the queued one)."""
    from mnistlab.tune import study as tune_study

    study = optuna.load_study(study_name="r", storage=tune_study.storage(url))
    while time.time() < at:
        pass
    numbers.put(study.ask().number)


def test_two_workers_asking_at_once_never_claim_the_queued_trial_twice(tmp_path):
    """Issue 31: on SQLite, Optuna's claim of a queued trial (read WAITING, then write RUNNING) was two steps with no
    row lock, and two workers asking together both got trial 0 (14 of 20 rounds of this race on 2026-12-07; one
    tune in five of the test above). With every transaction BEGIN IMMEDIATE (`tune_study.storage`), one gets it."""
    import multiprocessing

    from mnistlab.tune import study as tune_study

    ctx = multiprocessing.get_context("fork")
    for i in range(4):
        url = f"sqlite:///{tmp_path / f'r{i}.db'}"
        optuna.create_study(study_name="r", storage=tune_study.storage(url)).enqueue_trial({"x": 1.0})
        numbers, at = ctx.Queue(), time.time() + 1.5  # both started and waiting before the moment
        workers = [ctx.Process(target=_ask_at, args=(url, at, numbers)) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
        assert sorted(numbers.get(timeout=5) for _ in workers) == [0, 1], f"round {i}"


@pytest.mark.parametrize("name", ["../../outside", "/tmp/abs", "a\x1b[31mRED", ".hidden", "x" * 95])
def test_a_study_name_never_leaves_runs(tmp_path, env, name):
    """Issue 28, row 12's twin: --study names runs/tune-NAME and the recipes NAME-trialN, so it follows a recipe
    name's rules; refused in one line before any folder or database is made."""
    one_line_error(run_main("tune", "--study", name, "--trials", 1, env=env, cwd=tmp_path))
    assert list(tmp_path.iterdir()) == []
