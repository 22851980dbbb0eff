"""Explaining a network: the receptive-field table (walked from the model), the input gradient of an answer, the
torchinfo summary, confusion."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

# Layers that change neither the receptive field nor the spatial size.
PASS_THROUGH = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
    nn.BatchNorm2d,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LogSoftmax,
    nn.Softmax,
)
# Layers after which the features are no longer spatial: the walk ends there.
END = (nn.Flatten, nn.Linear, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@dataclass
class RFRow:
    """One layer of the receptive-field table (None = could not be analysed)."""

    layer: str
    kind: str
    rf_in: int | None
    n_in: int | None
    j_in: int | None
    stride: int | None
    padding: int | None
    kernel: int | None
    rf_out: int | None
    n_out: int | None
    j_out: int | None
    note: str = ""


def _pair0(v) -> int:
    return int(v[0] if isinstance(v, (tuple, list)) else v)


def _leaf_call_order(model: nn.Module, input_size: tuple[int, ...]) -> list[tuple[str, nn.Module, tuple, tuple]]:
    """(name, module, input shape, output shape) of every leaf module, in the order forward() calls them."""
    calls = []
    hooks = []
    names = {m: n for n, m in model.named_modules()}
    for m in model.modules():
        if next(m.children(), None) is None:
            hooks.append(
                m.register_forward_hook(
                    lambda mod, inp, out: calls.append((names[mod], mod, tuple(inp[0].shape), tuple(out.shape)))
                )
            )
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_size, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return calls


def receptive_field(model: nn.Module, input_size: tuple[int, ...] = (1, 1, 28, 28)) -> list[RFRow]:
    """The receptive-field table of `model`, walked in forward order.

    rf_out = rf_in + (k_eff - 1) * j_in, j_out = j_in * stride, n from the shapes the layer really saw
    (k_eff = dilation * (kernel - 1) + 1). Conv2d, MaxPool2d and AvgPool2d are analysed; pass-through
    layers are skipped; the walk ends at the first Flatten/Linear. Any other layer gets a row that says it
    was not analysed, and every row after it has no rf values: nothing is guessed.
    """
    rows: list[RFRow] = []
    rf, j = 1, 1
    known = True
    for name, m, in_shape, out_shape in _leaf_call_order(model, input_size):
        if isinstance(m, PASS_THROUGH):
            continue
        if isinstance(m, END):
            break
        n_in = in_shape[-1] if len(in_shape) == 4 else None
        n_out = out_shape[-1] if len(out_shape) == 4 else None
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) and known:
            k, s, p = _pair0(m.kernel_size), _pair0(m.stride), _pair0(m.padding)
            d = _pair0(getattr(m, "dilation", 1))
            k_eff = d * (k - 1) + 1
            rf_out, j_out = rf + (k_eff - 1) * j, j * s
            kind = type(m).__name__
            rows.append(
                RFRow(name, kind, rf, n_in, j, s, p, k_eff, rf_out, n_out, j_out, f"dilation {d}" if d != 1 else "")
            )
            rf, j = rf_out, j_out
        else:
            rows.append(
                RFRow(
                    name,
                    type(m).__name__,
                    None,
                    n_in,
                    None,
                    None,
                    None,
                    None,
                    None,
                    n_out,
                    None,
                    "not analysed" if known else "after a layer that was not analysed",
                )
            )
            known = False
    return rows


def rf_table_markdown(rows: list[RFRow]) -> str:
    head = "| layer | kind | rf_in | n_in | j_in | kernel | stride | padding | rf_out | n_out | j_out |"
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        vals = [r.layer, r.kind, r.rf_in, r.n_in, r.j_in, r.kernel, r.stride, r.padding, r.rf_out, r.n_out, r.j_out]
        cells = ["—" if v is None else str(v) for v in vals]
        if r.note:
            cells[1] += f" ({r.note})"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rf_rows_as_dicts(rows: list[RFRow]) -> list[dict]:
    return [asdict(r) for r in rows]


def unit_geometry(model: nn.Module, input_size: tuple[int, ...] = (1, 1, 28, 28)) -> list[dict]:
    """Each spatial layer of the receptive-field walk as a dict: layer, kind, size (n_out), receptive_field (rf_out),
    jump (j_out) and offset, the first input row (or column) that unit 0 sees, so that unit i sees rows
    offset + i * jump to offset + i * jump + receptive_field - 1. None where the walk could not analyse a layer."""
    out: list[dict] = []
    offset: int | None = 0
    for r in receptive_field(model, input_size):
        if offset is not None and r.padding is not None and r.j_in is not None:
            offset -= r.padding * r.j_in
        else:
            offset = None
        known = r.rf_out is not None and offset is not None
        out.append(
            {
                "layer": r.layer,
                "kind": r.kind,
                "size": r.n_out,
                "receptive_field": r.rf_out,
                "jump": r.j_out,
                "offset": offset if known else None,
            }
        )
    return out


def _scaled(heat: torch.Tensor) -> torch.Tensor:
    """`heat` divided by its maximum (all zeros when that is 0 or not finite)."""
    top = heat.max()
    return heat / top if bool(top > 0) and bool(torch.isfinite(top)) else torch.zeros_like(heat)


def input_gradient(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probabilities, heat-map) for one input `x` (1 x C x H x W, as the model takes it): the heat-map is
    |d log p(predicted class) / d x| summed over channels, H x W, scaled to a maximum of 1."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        log_p = model(x)[0]
        (grad,) = torch.autograd.grad(log_p[int(log_p.argmax())], x)
    return log_p.detach(), _scaled(grad[0].abs().sum(0).float())


def model_summary(model: nn.Module, input_size: tuple[int, ...] = (1, 1, 28, 28)):
    """torchinfo's summary (ModelStatistics: str() is the table, .total_params the count)."""
    from torchinfo import summary

    return summary(model, input_size=input_size, col_names=("output_size", "num_params"), verbose=0, device="cpu")


def confusion_matrix(targets: torch.Tensor, preds: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """cm[true, pred] counts."""
    idx = targets.long() * num_classes + preds.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(cm: torch.Tensor) -> list[float]:
    totals = cm.sum(1).clamp(min=1)
    return (cm.diag().float() / totals.float()).tolist()
