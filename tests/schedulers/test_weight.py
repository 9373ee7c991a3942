"""Loss-weight ramp-ups (sesemi/schedulers/weight.py)."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest

from sesemi.errors import SesemiError
from sesemi.schedulers.weight import LinearRampupScheduler, SigmoidRampupScheduler


def test_sigmoid_endpoints():
    """Starts at weight * exp(-5) (near zero) and reaches the full weight at the pivot."""
    ramp = SigmoidRampupScheduler(pivot=100, weight=2.0)
    assert ramp(0) == pytest.approx(2.0 * math.exp(-5))
    assert ramp(50) == pytest.approx(2.0 * math.exp(-5 * 0.25))
    assert ramp(100) == pytest.approx(2.0)
    assert ramp(10_000) == pytest.approx(2.0)


def test_sigmoid_is_monotone():
    """The weight never decreases as training proceeds."""
    ramp = SigmoidRampupScheduler(pivot=50)
    values = [ramp(step) for step in range(80)]
    assert all(a <= b for a, b in pairwise(values))
    assert values[0] < 0.01 and values[-1] == 1.0


def test_sigmoid_without_ramp():
    """pivot=0 means the full weight from the first step."""
    assert SigmoidRampupScheduler(pivot=0, weight=3.0)(0) == 3.0


def test_linear_endpoints():
    """0 up to `start`, `weight` from `stop`, a straight line in between."""
    ramp = LinearRampupScheduler(stop=30, start=10, weight=4.0)
    assert ramp(0) == 0.0 and ramp(10) == 0.0
    assert ramp(20) == pytest.approx(2.0)
    assert ramp(30) == pytest.approx(4.0) and ramp(1000) == pytest.approx(4.0)


def test_linear_is_monotone():
    """The weight never decreases."""
    ramp = LinearRampupScheduler(stop=20)
    values = [ramp(step) for step in range(30)]
    assert all(a <= b for a, b in pairwise(values))
    assert values[0] == 0.0 and values[-1] == 1.0


# --- sesemi 0.3's signature: SigmoidRampupScheduler(weight, stop_rampup) ---------------------------


def test_sigmoid_takes_sesemi_0_3_arguments_by_position_and_by_name():
    """0.3's order (weight, stop_rampup) and names give the same ramp as today's keywords."""
    today = SigmoidRampupScheduler(pivot=100, weight=2.0)
    for old in (SigmoidRampupScheduler(2.0, 100), SigmoidRampupScheduler(weight=2.0, stop_rampup=100)):
        assert [old(step) for step in (0, 50, 100, 200)] == pytest.approx([today(step) for step in (0, 50, 100, 200)])
    assert SigmoidRampupScheduler(2.0, pivot=100)(100) == pytest.approx(2.0)


def test_sigmoid_without_a_pivot_or_with_two_is_refused():
    """A lone positional number is 0.3's weight, so the pivot is missing: refused, never guessed."""
    with pytest.raises(SesemiError, match="needs pivot="):
        SigmoidRampupScheduler(100)
    with pytest.raises(SesemiError, match="pivot .* or stop_rampup .*, not both"):
        SigmoidRampupScheduler(pivot=100, stop_rampup=100)
    with pytest.raises(TypeError):
        SigmoidRampupScheduler(1.0, 100, 5)  # pivot is keyword-only
