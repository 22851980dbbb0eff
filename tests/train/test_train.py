import math

import pytest
import torch
import torch.nn.functional as F
from conftest import untimed

from mnistlab.data import download as data
from mnistlab.data.loaders import DeviceLoader
from mnistlab.model import Net
from mnistlab.recipes import SEED, get_recipe
from mnistlab.train.run import Run
from mnistlab.train.training import fit
from mnistlab.utils import History, set_seed, train
from mnistlab.utils import test as evaluate


def test_train_loop_lowers_the_loss_on_real_data(data_dir, capsys):
    set_seed(0)
    x, y = data.load_tensors(True, data_dir, limit=2000)
    xt, yt = data.load_tensors(False, data_dir, limit=500)
    loader = DeviceLoader(x, y, 100, "cpu", shuffle=True, seed=0)
    test_loader = DeviceLoader(xt, yt, 500, "cpu")
    model = Net()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = History()
    for epoch in range(1, 4):
        loader.set_epoch(epoch)
        res = train(model, torch.device("cpu"), loader, opt, progress=True)
        loss, correct, total = evaluate(model, torch.device("cpu"), test_loader)
        history.add(epoch=epoch, train_loss=res.loss, test_acc=correct / total)
    out = capsys.readouterr()
    assert "Test set: Average loss: " in out.out and "/500 (" in out.out
    assert "Train: Loss=" in out.err and "Batch_id=19 Accuracy=" in out.err
    assert history.train_losses[-1] < 0.5 * history.train_losses[0]
    assert history.test_acc[-1] > 0.8


def test_default_recipe_reaches_98_5_after_one_full_epoch(trained_one_epoch):
    rec = trained_one_epoch.history.records[0]
    assert rec["test_acc"] >= 0.985, rec
    assert rec["epoch"] == 1 and rec["train_time_s"] > 0 and rec["imgs_per_s"] > 0


def test_seed_recipe_runs_faithfully(data_dir, mirror):
    recipe = get_recipe("seed", epochs=3, limit_train=1100, limit_test=512, device="cpu")
    assert (recipe.optimizer, recipe.lr, recipe.momentum, recipe.batch_size) == ("sgd", 0.01, 0.9, 1024)
    assert (recipe.scheduler, recipe.step_size, recipe.gamma, recipe.label_smoothing) == ("step", 2, 0.1, 0.0)
    assert recipe.pipeline == "loader" and recipe.amp == "off" and SEED.epochs == 5
    assert not recipe.keep_cpu_buffers and not recipe.channels_last  # the seed ran stock: fp32, NCHW, glibc defaults
    res = fit(recipe, data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)
    lrs = res.history.column("lr")
    assert lrs[0] == pytest.approx(0.01) and lrs[1] == pytest.approx(0.01) and lrs[2] == pytest.approx(0.001)
    assert len(res.train_loader) == 2  # the seed's batch of 1024, then the last 76 images
    assert all(math.isfinite(v) for v in res.history.train_losses)


needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU: run on the GPU machine (benchmarks/gpu.sh)"
)


def _small(**kw):
    return get_recipe(
        "default", **{**dict(epochs=2, limit_train=512, limit_test=256, batch_size=64, device="cpu"), **kw}
    )


def test_run_step_by_step_is_fit(tmp_path, data_dir, mirror):
    """The loop a notebook writes with Run is the one fit runs: same weights, same records, same files."""
    quiet = dict(data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)
    run = Run.create(_small(), tmp_path / "by-hand", **quiet)
    while not run.done:
        run.train_epoch()
        run.evaluate()
        run.save()
    run.export()
    ref = fit(_small(), out=tmp_path / "fit", **quiet)
    assert untimed(run.history.records) == untimed(ref.history.records)
    for k, v in ref.model.state_dict().items():
        assert torch.equal(run.model.state_dict()[k], v), k
    assert sorted(p.name for p in (tmp_path / "by-hand").iterdir()) == sorted(
        p.name for p in (tmp_path / "fit").iterdir()
    )


def test_evaluating_inside_epochs_changes_nothing_but_the_records(data_dir, mirror):
    quiet = dict(data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)
    sliced = fit(_small(), evals_per_epoch=3, **quiet)
    whole = fit(_small(), **quiet)
    assert [r["epoch"] for r in sliced.history.records] == pytest.approx(
        [3 / 8, 6 / 8, 1, 11 / 8, 14 / 8, 2]
    )  # batches of 3, 3, 2
    assert [r["epoch"] for r in whole.history.records] == [1, 2]
    for k, v in whole.model.state_dict().items():
        assert torch.equal(sliced.model.state_dict()[k], v), k


def test_run_refuses_what_it_cannot_do(tmp_path, data_dir, mirror):
    run = Run.create(
        _small(epochs=1), tmp_path / "run", data_dir=data_dir, mirror=str(mirror), progress=False, echo=False
    )
    with pytest.raises(RuntimeError, match="train before evaluating"):
        run.evaluate()
    run.train_epoch(batches=3)
    assert run.evaluate()["epoch"] == pytest.approx(3 / 8)  # 512 images in batches of 64
    with pytest.raises(RuntimeError, match="epoch boundaries"):
        run.save()
    run.train_epoch()
    assert run.done and run.evaluate()["epoch"] == 1
    with pytest.raises(RuntimeError, match="all its 1 epochs"):
        run.train_epoch()


def test_fixed_seed_reproduces_on_cpu(data_dir, mirror):
    a = fit(_small(), data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)
    b = fit(_small(), data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k
    assert untimed(a.history.records) == untimed(b.history.records)
    c = fit(_small(seed=2), data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)
    assert not torch.equal(a.model.fc2.weight, c.model.fc2.weight)


def _one_step(device, data_dir):
    torch.manual_seed(0)
    model = Net().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = data.load_tensors(False, data_dir, limit=128)
    loader = DeviceLoader(x, y, 64, device)
    for xb, yb in loader:
        loss = F.nll_loss(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    xb, _ = next(iter(loader))
    with torch.no_grad():
        return model(xb).cpu()


@needs_cuda
def test_cpu_and_cuda_agree(data_dir, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # for this test only: restored after it
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    torch.testing.assert_close(_one_step("cuda", data_dir), _one_step("cpu", data_dir), atol=2e-3, rtol=2e-3)


@needs_cuda
def test_cuda_graph_step_trains_like_eager(data_dir, mirror):
    kw = dict(epochs=2, limit_train=16384, limit_test=2000, batch_size=256, device="cuda", amp="off")
    graphed = fit(
        get_recipe("default", cuda_graphs="on", **kw), data_dir=data_dir, mirror=str(mirror), progress=False, echo=False
    )
    eager = fit(
        get_recipe("default", cuda_graphs="off", **kw),
        data_dir=data_dir,
        mirror=str(mirror),
        progress=False,
        echo=False,
    )
    # different random augmentation streams, same recipe: both must learn about equally well
    assert graphed.history.test_acc[-1] > 0.95 and eager.history.test_acc[-1] > 0.95
    assert abs(graphed.history.test_acc[-1] - eager.history.test_acc[-1]) < 0.02


@needs_cuda
def test_cuda_graph_run_resumes_from_its_checkpoint(tmp_path, data_dir, mirror):
    """The CUDA-graph path through Run: a run cut after epoch 1 and resumed ends like an uninterrupted one."""
    quiet = dict(data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)
    kw = dict(epochs=2, limit_train=8192, limit_test=2000, device="cuda")
    ref = fit(get_recipe("default", **kw), out=tmp_path / "ref", **quiet)
    cut = Run.create(get_recipe("default", **kw), tmp_path / "cut", **quiet)
    assert cut.graphs
    cut.train_epoch()
    cut.evaluate()
    cut.save()
    cut.release()  # as the process's end would: the run folder's lock
    del cut
    resumed = fit(None, out=tmp_path / "cut", resume=True, **quiet)
    assert resumed.graphs and [r["epoch"] for r in resumed.history.records] == [1, 2]
    assert abs(resumed.history.test_acc[-1] - ref.history.test_acc[-1]) < 0.01
    # on the GPU the same steps may differ in the last bits (cuDNN's backward is not deterministic): close, not equal
    diff = max(float((v - resumed.model.state_dict()[k]).abs().max()) for k, v in ref.model.state_dict().items())
    assert diff < 1e-3, f"resumed CUDA-graph run differs from the uninterrupted one by {diff:.3g}"


@pytest.mark.parametrize("epochs, batches", [(0.5, [5]), (1.6, [10, 6])])
def test_fractional_epochs_train_exactly_their_share_and_end_the_schedule(epochs, batches, data_dir, mirror):
    # 1,000 images in batches of 100: 10 batches an epoch; 0.5 epochs = 5 batches, 1.6 epochs = 10 + 6
    recipe = get_recipe("default", epochs=epochs, limit_train=1000, batch_size=100, limit_test=200, device="cpu")
    seen, lrs = [], []
    run = Run.create(recipe, data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)
    run.optimizer.register_step_pre_hook(lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"]))
    while not run.done:
        seen.append(run.train_epoch().images)
        run.evaluate()
    assert seen == [100 * b for b in batches]
    assert [r["epoch"] for r in run.history.records] == ([0.5] if epochs == 0.5 else [1, 1.6])
    assert len(lrs) == sum(batches) == run.total_steps  # OneCycle spans exactly the run ...
    assert max(lrs) == pytest.approx(recipe.lr)  # ... peaks at lr ...
    final_lr = recipe.lr / recipe.div_factor / recipe.final_div_factor
    assert lrs[-1] == pytest.approx(final_lr, rel=1e-6)  # ... and its last step is at its floor
    # the images of the fractional epoch are the first batches of that epoch's shuffle, fixed by the seed
    first = run.train_loader.sampler.indices(len(batches))[: 100 * batches[-1]]
    assert len(set(first.tolist())) == 100 * batches[-1]


def test_val_split_evaluates_on_held_out_training_images(data_dir, mirror):
    from mnistlab.train.build import load_data

    recipe = get_recipe("default", val=500, limit_test=100, device="cpu")
    d = load_data(recipe, data_dir, str(mirror))
    xtr, _ = data.load_tensors(True, data_dir)
    assert torch.equal(d.test_images, xtr[-500:][:100]) and torch.equal(d.train_images, xtr[:-500])
    assert len(d.train_labels) == 59_500


def test_named_recipes_validate_train_the_seed_net_and_are_described(capsys):
    import dataclasses

    from mnistlab.cli import main
    from mnistlab.recipes import ABOUT, DEFAULT, RECIPES

    # what a speed recipe may change; the network is always the seed's Net (Recipe has no setting for another)
    tunable = {"name", "epochs", "batch_size", "lr", "optimizer", "momentum", "nesterov", "weight_decay", "scheduler"}
    tunable |= {"pct_start", "div_factor", "final_div_factor", "label_smoothing", "eval_batch_size"}
    tunable |= {f.name for f in dataclasses.fields(DEFAULT) if f.name.startswith("aug_")}
    for name in ("fast99", "fast994", "best"):
        r = get_recipe(name)
        changed = {f.name for f in dataclasses.fields(r) if getattr(r, f.name) != getattr(DEFAULT, f.name)}
        assert r.name == name and changed <= tunable, (name, changed - tunable)
        assert r.epochs <= 10 and r.val is None and r.limit_train is None and r.limit_test is None
    assert set(ABOUT) == set(RECIPES)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, about in ABOUT.items():
        assert f"{name}: {' '.join(about.split())}" in text


# --------------------------------------------------------------------------------------------------------------
# The loop's parts: when it evaluates and checkpoints, the bar's span, and what it prints


def test_the_train_line_is_shown_once_and_labelled(tmp_path, data_dir, mirror, capsys):
    """With the bar on the terminal the seed's line is the bar's; train.log says which loss is which."""
    quiet = dict(data_dir=data_dir, mirror=str(mirror))
    fit(_small(epochs=1), out=tmp_path / "bar", progress=True, echo=True, **quiet)
    out = capsys.readouterr()
    assert out.err.count("Train: Loss=") >= 1 and "Train: Loss=" not in out.out and "Test set:" in out.out
    log = (tmp_path / "bar" / "train.log").read_text()
    assert "Batch_id=7 Accuracy=" in log and "(Loss is the last batch's; train_loss, the mean over these 8" in log
    run = fit(_small(epochs=1), progress=False, echo=True, **quiet)  # --quiet: no bar, so the line is printed
    out = capsys.readouterr()
    assert out.out.count("Train: Loss=") == 1 and "Train: Loss=" not in out.err
    assert " after 1 epoch, " in run.summary() and " s of training" in run.summary()


def test_the_learning_rate_is_set_before_every_step_and_recorded(data_dir, mirror):
    from mnistlab.recipes import lr_at

    recipe = _small()
    lrs = []
    run = Run.create(recipe, data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)
    run.optimizer.register_step_pre_hook(lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"]))
    while not run.done:
        run.train_step()
        if run.step % 4 == 0:
            run.evaluate()
    assert lrs == [lr_at(recipe, s, 8) for s in range(16)]
    assert run.history.column("lr") == [lrs[0], lrs[4], lrs[8], lrs[12]]  # each record: its first step's
    assert [r["epoch"] for r in run.history.records] == [0.5, 1, 1.5, 2]
