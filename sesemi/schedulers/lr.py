"""Learning-rate schedules."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from sesemi.errors import SesemiError


class PolynomialLR(LambdaLR):
    """Linear warm-up from `warmup_lr`, then polynomial decay to zero at `max_iters`.

    lr(t) = warmup_lr + (base_lr - warmup_lr) * t / W             for t < W
    lr(t) = base_lr * (1 - (t - W) / (max_iters - W)) ** lr_pow   for t >= W,
    with W = `warmup_iters`, or `warmup_epochs * iters_per_epoch`. Step it once per iteration.

    The arguments are those of sesemi 0.3, in its order, so its calls work unchanged:
    `PolynomialLR(optimizer, warmup_lr, lr_pow, max_iters, warmup_iters=...)`; configs name them.

    Args:
        optimizer: The optimizer; each group's initial `lr` is its base_lr.
        warmup_lr: The learning rate at the first iteration.
        lr_pow: The decay exponent (1 is linear, 0.5 decays slowly at first).
        max_iters: The total number of iterations (`${sesemi:max_iterations}`).
        warmup_iters: The warm-up length in iterations. Cannot be set with `warmup_epochs`.
        warmup_epochs: The warm-up length in epochs (None: no warm-up, unless `warmup_iters`).
        iters_per_epoch: Iterations per epoch (`${sesemi:iterations_per_epoch}`), for
            `warmup_epochs`.
        last_epoch: The index of the last step, to resume a schedule (-1: a new one).

    Raises:
        SesemiError: Both `warmup_iters` and `warmup_epochs` are given.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_lr: float = 0.0,
        lr_pow: float = 1.0,
        max_iters: int = 1,
        warmup_iters: int | None = None,
        warmup_epochs: float | None = None,
        iters_per_epoch: int = 1,
        last_epoch: int = -1,
    ):
        if warmup_iters is not None and warmup_epochs is not None:
            raise SesemiError(
                f"PolynomialLR takes warmup_iters ({warmup_iters}) or warmup_epochs ({warmup_epochs}), not both"
            )
        if warmup_iters is None:
            warmup_iters = int((warmup_epochs or 0) * iters_per_epoch)
        self.warmup_iters = int(warmup_iters)
        self.max_iters = max(max_iters, self.warmup_iters + 1)
        self.warmup_lr = warmup_lr
        self.lr_pow = lr_pow
        factors = [self._factor_fn(group["lr"]) for group in optimizer.param_groups]
        super().__init__(optimizer, factors, last_epoch)

    def _factor_fn(self, base_lr: float):
        start = self.warmup_lr / base_lr if base_lr else 1.0

        def factor(step: int) -> float:
            if step < self.warmup_iters:
                return start + (1.0 - start) * step / self.warmup_iters
            progress = (step - self.warmup_iters) / (self.max_iters - self.warmup_iters)
            return max(0.0, 1.0 - progress) ** self.lr_pow

        return factor
