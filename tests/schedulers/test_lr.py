"""PolynomialLR (sesemi/schedulers/lr.py): linear warm-up, then polynomial decay to zero."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from sesemi.errors import SesemiError
from sesemi.schedulers.lr import PolynomialLR


def _lrs(steps: int, *arguments, base_lr: float = 0.1, **kwargs) -> list[float]:
    """The learning rate used at each step 0..steps-1 (one scheduler step per iteration)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    scheduler = PolynomialLR(optimizer, *arguments, **kwargs)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


WARMUP = {"warmup_epochs": 2, "iters_per_epoch": 5, "warmup_lr": 0.001, "lr_pow": 1.0, "max_iters": 30}


def test_first_step_uses_warmup_lr():
    """Training starts at warmup_lr, not at the base learning rate."""
    assert _lrs(1, **WARMUP)[0] == pytest.approx(0.001)


def test_warmup_is_linear_and_reaches_base_lr():
    """The lr rises linearly over warmup_epochs * iters_per_epoch steps to the base lr."""
    lrs = _lrs(11, **WARMUP)
    assert lrs[10] == pytest.approx(0.1)
    assert lrs[5] == pytest.approx(0.001 + (0.1 - 0.001) * 5 / 10)
    assert all(a < b for a, b in pairwise(lrs))


def test_decays_to_zero_at_max_iters():
    """After warm-up the lr decreases monotonically and is ~0 at max_iters."""
    lrs = _lrs(31, **WARMUP)
    decay = lrs[10:]
    assert all(a > b for a, b in pairwise(decay))
    assert lrs[30] == pytest.approx(0.0, abs=1e-12)
    assert lrs[29] > 0


def test_lr_stays_at_zero_after_max_iters():
    """Running past the budget never produces a negative (or growing) lr."""
    lrs = _lrs(40, **WARMUP)
    assert all(lr == pytest.approx(0.0, abs=1e-12) for lr in lrs[30:])


@pytest.mark.parametrize("lr_pow, expected", [(1.0, 0.05), (0.5, 0.1 * 0.5**0.5), (2.0, 0.025)])
def test_lr_pow_shapes_the_decay(lr_pow, expected):
    """Halfway through the decay the lr is base_lr * 0.5 ** lr_pow."""
    lrs = _lrs(21, warmup_epochs=0, lr_pow=lr_pow, max_iters=20)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[10] == pytest.approx(expected)


def test_every_param_group_warms_up_from_warmup_lr_to_its_own_lr():
    """Groups with different base lrs all start at warmup_lr and reach their own lr."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizer = torch.optim.SGD([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]], "lr": 0.01}])
    scheduler = PolynomialLR(optimizer, warmup_epochs=1, iters_per_epoch=4, warmup_lr=0.001, max_iters=10)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.001, 0.001])
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.1, 0.01])


def test_state_dict_resumes_the_schedule():
    """A scheduler restored from state_dict continues at the same lr (resuming a run)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = PolynomialLR(optimizer, **WARMUP)
    for _ in range(15):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    fresh_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    fresh = PolynomialLR(fresh_optimizer, **WARMUP)
    fresh_optimizer.load_state_dict(optimizer.state_dict())
    fresh.load_state_dict(state)
    optimizer.step()
    scheduler.step()
    fresh_optimizer.step()
    fresh.step()
    assert fresh_optimizer.param_groups[0]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"])
    assert fresh_optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * (1 - 6 / 20))


# --- sesemi 0.3's signature: PolynomialLR(optimizer, warmup_lr, lr_pow, max_iters, warmup_iters=None,
# warmup_epochs=None, iters_per_epoch=None) ----------------------------------------------------------


def test_warmup_iters_is_the_warmup_in_steps():
    """0.3's `warmup_iters` is the same schedule as `warmup_epochs * iters_per_epoch`."""
    by_iters = _lrs(31, warmup_iters=10, warmup_lr=0.001, lr_pow=1.0, max_iters=30)
    assert by_iters == pytest.approx(_lrs(31, **WARMUP))


def test_every_argument_of_sesemi_0_3_by_keyword_and_by_position():
    """A 0.3 call, by its keywords or in its positional order, gives the 0.3 schedule."""
    keywords = {"warmup_lr": 0.001, "lr_pow": 0.5, "max_iters": 30, "warmup_epochs": 2, "iters_per_epoch": 5}
    positional = _lrs(31, 0.001, 0.5, 30, None, 2, 5)
    assert _lrs(31, **keywords) == pytest.approx(positional)
    assert _lrs(31, 0.001, 0.5, 30, 10) == pytest.approx(positional)
    assert positional[0] == pytest.approx(0.001) and positional[10] == pytest.approx(0.1)
    assert positional[20] == pytest.approx(0.1 * 0.5**0.5)


def test_warmup_iters_and_warmup_epochs_together_are_refused():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(SesemiError, match="warmup_iters .* or warmup_epochs .*, not both"):
        PolynomialLR(optimizer, warmup_lr=0.001, lr_pow=1.0, max_iters=30, warmup_iters=10, warmup_epochs=2)

