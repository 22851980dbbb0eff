"""mnistlab.calibration: temperature, digit score, ECE and the not-a-digit threshold."""

from __future__ import annotations

import math

import pytest
import torch

from mnistlab.calibration import calibrate, calibrated, digit_score, ece, fit_temperature, threshold


def test_calibrated_is_a_log_softmax_at_the_temperature():
    lp = torch.tensor([[2.0, 0.0, -1.0]]).log_softmax(1)
    assert torch.allclose(calibrated(lp, 1.0), lp, atol=1e-6)
    hot = calibrated(lp, 2.0).exp()
    assert torch.allclose(hot.sum(1), torch.ones(1)) and hot.max() < lp.exp().max()


def test_digit_score_is_one_when_sure_and_zero_when_uniform():
    probs = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.625, 0.125, 0.125, 0.125]])
    assert torch.allclose(digit_score(probs), torch.tensor([1.0, 0.0, 0.5]))
    assert torch.equal(digit_score(torch.ones(3, 1)), torch.ones(3))


def test_fit_temperature_recovers_the_temperature_of_overconfident_logits():
    g = torch.Generator().manual_seed(0)
    true = torch.randn(1000, 10, generator=g) * 2
    labels = torch.distributions.Categorical(logits=true).sample()
    t = fit_temperature((3 * true).log_softmax(1), labels)  # logits three times too sharp
    assert t == pytest.approx(3.0, rel=0.1)


def test_ece_is_zero_for_calibrated_certainty_and_the_gap_otherwise():
    sure = torch.eye(4)
    assert ece(sure, torch.arange(4)) == pytest.approx(0.0)
    assert ece(sure, torch.tensor([1, 0, 3, 2])) == pytest.approx(1.0)  # sure and always wrong


def test_threshold_accepts_the_asked_share():
    scores = torch.linspace(0, 1, 1001)
    thr = threshold(scores, accept=0.9)
    assert float((scores >= thr).float().mean()) == pytest.approx(0.9, abs=0.002)
    assert threshold(torch.tensor([])) == 0.0


def test_calibrate_reports_what_a_model_card_stores():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(200, 10, generator=g) * 3
    labels = logits.argmax(1)
    card = calibrate(logits.log_softmax(1), labels)
    assert set(card) == {"temperature", "digit_threshold", "images", "ece_before", "ece_after", "accepted"}
    assert card["images"] == 200 and card["accepted"] >= 0.995 and math.isfinite(card["temperature"])
    assert card["ece_after"] <= card["ece_before"] + 1e-6
