"""A `mnistlab tune` study: its storage (SQLite in runs/tune-NAME/, or any SQLAlchemy URL), the loop a worker runs
until the study has its trials, trials lost with a killed worker, the best trial as a recipe, plots and a summary."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

from mnistlab.errors import UserError, one_line
from mnistlab.recipes import Recipe
from mnistlab.tune import checks
from mnistlab.tune.trial import Objective, Trainer, start_params

HEARTBEAT_S = 20  # a worker's running trial is marked alive this often; one silent for GRACE_S is failed
GRACE_S = 90
SQLITE_WAIT_S = 120  # a worker waits this long for the SQLite study's write lock (its transactions are short; a loaded
# machine may hold one for seconds, and pysqlite's 5 s default then fails the worker with "database is locked")


def folder(name: str) -> Path:
    return Path("runs") / f"tune-{name}"


def storage_url(name: str, url: str | None) -> str:
    """`url`, or the study's own SQLite file (its folder created)."""
    if url:
        return url
    folder(name).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder(name) / 'study.db').resolve()}"


def storage(url: str):
    """Optuna's RDBStorage on `url`, with heartbeats; an unreachable or malformed URL, or an SQLite file of another
    program, is a one-line UserError (which shows the URL without its secrets, see `checks.shown`)."""
    import time

    import optuna

    checks.check_url(url)
    checks.check_sqlite(url)
    for attempt in range(3):
        try:
            sqlite = url.startswith("sqlite:")
            engine: dict = {"connect_args": {"timeout": SQLITE_WAIT_S}} if sqlite else {}
            store = optuna.storages.RDBStorage(
                _driver(url), engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
            )
            return _one_writer_at_a_time(store) if sqlite else store
        except Exception as e:  # sqlalchemy's OperationalError, ArgumentError, a missing driver's ImportError, ...
            # workers starting together race to create the tables: the loser's error goes away on a retry
            if attempt == 2 or "refused" in str(e) or isinstance(e, (ImportError, ValueError)):
                message = checks.scrub(one_line(e), url)
                raise UserError(f"cannot open --storage {checks.shown(url)}: {message}") from None
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def _one_writer_at_a_time(store):
    """SQLite has no row locks (Optuna's `SELECT ... FOR UPDATE` is plain there) and pysqlite begins a transaction
    only at its first write: two workers could both read the queued trial as WAITING and both claim it (issue 31:
    1 tune in 5 ran trial 0 twice). Every transaction begins IMMEDIATE instead, taking the database's write lock
    before it reads, so a claim is one step, as on PostgreSQL (SQLAlchemy's pysqlite recipe)."""
    from sqlalchemy import event

    def connected(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGIN from pysqlite: SQLAlchemy's, below, instead

    def begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(store.engine, "connect", connected)
    event.listen(store.engine, "begin", begin)
    store.engine.dispose()  # connections made before the listeners are closed: every one from now has them
    return store


def _driver(url: str) -> str:
    """postgresql://... with psycopg (3) installed and psycopg2 not: SQLAlchemy's default driver is psycopg2."""
    import importlib.util

    if url.startswith("postgresql://") and not importlib.util.find_spec("psycopg2"):
        if importlib.util.find_spec("psycopg"):
            return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def create(name: str, url: str, objective: Objective, start: Recipe, budget: float, pruner: str, base: Recipe,
           evals_per_epoch: int = 5):  # fmt: skip
    """The study `name` (created, with the starting recipe as its first trial, if new); one made for another search
    (objective, recipe, budget, seed, ...: `checks.search`) is refused. `base`: the named recipe before the
    options that shaped the trials (--val, ...)."""
    import optuna

    store = storage(url)
    search = checks.search(objective, start, pruner, evals_per_epoch)
    with checks.storage_errors(url):  # a table of another program's, a lost connection: one line
        checks.check_study(name, _existing_attrs(store, name), search)  # before Optuna logs that it uses it
        study = optuna.create_study(
            study_name=name,
            storage=store,
            direction=objective.direction,
            load_if_exists=True,
            pruner=make_pruner(pruner),
            # TPE after 5 trials, not 10: a tune on a CPU may hold few trials
            sampler=optuna.samplers.TPESampler(n_startup_trials=5),
        )
    was = study.user_attrs.get("objective")
    if was is None:
        study.set_user_attr("search", search)
        study.set_user_attr("objective", str(objective))
        study.set_user_attr("base", dataclasses.asdict(base))
        study.set_user_attr("budget", budget)
        study.enqueue_trial(start_params(start, budget), user_attrs={"start": True})
    return study


def _existing_attrs(store, name: str) -> dict:
    """The user attrs of the study `name` in `store`, or {} if it has none (or is not there yet)."""
    try:
        return store.get_study_user_attrs(store.get_study_id_from_name(name))
    except KeyError:
        return {}


def make_pruner(name: str):
    import optuna

    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def load(name: str, url: str | None):
    """An existing study; an unknown one is a one-line UserError (and no SQLite file is created for it)."""
    import optuna

    if url is None and not (folder(name) / "study.db").is_file():
        raise UserError(f"no study {name!r}: {folder(name) / 'study.db'} does not exist (give its --storage?)")
    store = storage(storage_url(name, url))
    try:
        with checks.storage_errors(storage_url(name, url)):
            return optuna.load_study(study_name=name, storage=store)
    except KeyError:
        known = ", ".join(s.study_name for s in optuna.get_all_study_summaries(store)) or "none"
        raise UserError(f"no study {name!r} in that storage (it holds: {known})") from None


def counted(trial) -> bool:
    """Whether a trial counts towards --trials: finished, or failed with an error of its own (not lost)."""
    from optuna.trial import TrialState

    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and "error" in trial.user_attrs and "lost" not in trial.user_attrs


def fail_lost(study) -> list[int]:
    """Fail the RUNNING trials whose worker on this host is gone (killed): their numbers. Those of other hosts
    are failed by the heartbeat after GRACE_S."""
    from optuna.trial import TrialState

    lost = []
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker") or {}
        if worker.get("host") != host or worker.get("pid") == os.getpid() or _alive(worker.get("pid")):
            continue
        study._storage.set_trial_user_attr(t._trial_id, "lost", f"its worker (pid {worker.get('pid')}) ended")
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        lost.append(t.number)
    return lost


def _fail_stale(study) -> None:
    """Fail the RUNNING trials whose worker, on any host, has not beaten for GRACE_S (Optuna's heartbeat check,
    which `optimize` runs too, but only after the loop has counted the trials)."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _alive(pid) -> bool:
    if not isinstance(pid, int):
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def work(study, trainer: Trainer, start: Recipe, trials: int, timeout: float | None = None) -> None:
    """Run trials one at a time until the study holds `trials` counted (or running) ones, or `timeout` seconds
    pass. A trial's own failure (a NaN loss, ...) is recorded and the next one starts; any other mistake a user
    can fix ends the tune."""
    import time

    from optuna.trial import TrialState

    from mnistlab.train.run import NonFiniteLoss

    end = None if timeout is None else time.monotonic() + timeout
    fail_lost(study)
    while end is None or time.monotonic() < end:
        _fail_stale(study)  # before counting: a silent worker's RUNNING trial must not hold a place
        ts = study.get_trials(deepcopy=False)
        if sum(counted(t) or t.state == TrialState.RUNNING for t in ts) >= trials:
            return
        study.optimize(lambda trial: trainer(trial, start), n_trials=1, catch=(NonFiniteLoss, RuntimeError, ValueError))


def best_recipe(study) -> Recipe:
    """The best trial's recipe, with the settings that shaped the trials (val, limit_train, device, seed) back to
    the named recipe's, and `tuned` saying where it came from."""
    try:
        best = study.best_trial
    except ValueError:
        raise UserError(f"study {study.study_name!r} has no finished trial yet") from None
    base = Recipe.from_dict(study.user_attrs["base"], "the study's starting recipe")
    tried = Recipe.from_dict(best.user_attrs["recipe"], f"trial {best.number}'s recipe")
    tuned = {
        "study": study.study_name,
        "trial": best.number,
        "objective": study.user_attrs.get("objective"),
        "value": best.value,
        "val": tried.val,
        "val_acc": best.user_attrs.get("val_acc"),
    }
    keep = {k: getattr(base, k) for k in ("val", "limit_train", "limit_test", "device", "seed")}
    return dataclasses.replace(tried, name=f"{study.study_name}-trial{best.number}", tuned=tuned, **keep).validate()


def write_best(study, path: str | Path) -> Recipe:
    recipe = best_recipe(study)
    Path(path).write_text(recipe.to_json() + "\n")
    return recipe


def summary(study, wall_s: float | None = None) -> dict:
    """The study in JSON terms: its objective, the trials by state, the best, and every trial's line."""
    ts = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in ts:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    out = {"study": study.study_name, "objective": study.user_attrs.get("objective"), "trials": len(ts)}
    out |= {"states": states, "wall_s": wall_s, "budget_epochs": study.user_attrs.get("budget")}
    try:
        out["best"] = {"trial": study.best_trial.number, "value": study.best_value, "params": study.best_params}
    except ValueError:
        out["best"] = None
    keys = ("val_acc", "train_s", "wall_s", "error", "missed", "lost", "loadavg_start", "loadavg_end")
    out["trial_list"] = [
        {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params}
        | {k: t.user_attrs[k] for k in keys if k in t.user_attrs}
        | {"duration_s": t.duration.total_seconds() if t.duration else None}
        for t in ts
    ]
    return out


def plots(study, where: Path) -> list[Path]:
    """history.png, importances.png and intermediate.png (every trial's evaluations, pruned ones too: the val
    accuracy, or for time-to the val error): Optuna's matplotlib plots (Agg), in `where`; those with too few
    finished trials to draw (the history: one, the importances: two) are left out."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    written = []
    kinds: dict[str, Callable] = {
        "history": vis.plot_optimization_history,
        "importances": vis.plot_param_importances,
        "intermediate": vis.plot_intermediate_values,
    }
    from optuna.trial import TrialState

    finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if finished < 2:
        del kinds["importances"]  # Optuna would warn, and draw every importance equal (or an empty frame)
    if finished < 1:
        del kinds["history"]  # it would be an empty frame
    with warnings.catch_warnings():  # long parameter names: matplotlib's margins, not the user's to fix
        warnings.filterwarnings("ignore", "Tight layout not applied", UserWarning)
        for name, draw in kinds.items():
            try:
                ax = draw(study)
            except (ValueError, RuntimeError, ZeroDivisionError):  # e.g. importances of fewer than 2 finished trials
                continue
            path, figure = where / f"{name}.png", ax.get_figure(root=True)
            assert figure is not None
            figure.tight_layout()
            figure.savefig(path, dpi=110)
            plt.close(figure)
            written.append(path)
    return written


def write_summary(study, where: Path, wall_s: float | None) -> Path:
    path = where / "summary.json"
    path.write_text(json.dumps(summary(study, wall_s), indent=2) + "\n")
    return path
