"""The FixMatch step at USB's benchmark setting: USB's own step, two hand-written PyTorch steps and
sesemi's, on USB's WRN-28-2 with the same initial weights and the same fixed batch.

USB (Microsoft's Unified Semi-supervised Learning Benchmark, the `semilearn` package,
https://github.com/microsoft/Semi-supervised-learning) is imported without the audio, language and
logging packages its image FixMatch step never touches: where one is not installed, an empty
stand-in takes its place, and using anything from it raises.
"""

from __future__ import annotations

import copy
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import tempfile
import types
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Packages semilearn imports at start-up for its audio, text and logging code only.
OPTIONAL = ("torchaudio", "transformers", "skimage", "wandb", "aim")


class _Unavailable:
    """What a stand-in module hands out for any name: a class that cannot be used."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError(
            f"{type(self).__module__} is not installed; the benchmark only stands in for it"
        )

    from_pretrained = classmethod(__init__)


class _StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an empty module for every missing package in `names` and their submodules."""

    def __init__(self, names: set[str]):
        self.names = names

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []

        def attribute(name: str):
            if name.startswith("__"):
                raise AttributeError(name)
            return type(name, (_Unavailable,), {"__module__": spec.name})

        module.__getattr__ = attribute
        return module

    def exec_module(self, module):
        pass


def import_usb() -> types.ModuleType:
    """Imports `semilearn`, standing in for its optional dependencies that are not installed."""
    missing = {name for name in OPTIONAL if importlib.util.find_spec(name) is None}
    if missing:
        sys.meta_path.append(_StandIns(missing))
    import semilearn

    return semilearn


class USBStep:
    """USB's FixMatch, set as its CIFAR-10 config `fixmatch_cifar10_40_0.yaml` (one concatenated
    forward, EMA 0.999, SGD with Nesterov momentum, lr 0.03, weight decay 5e-4, cosine schedule,
    threshold 0.95, hard labels), running the body of `AlgorithmBase.train()` for one batch:
    the before-step hooks, `train_step`, and the after-step hooks (backward, optimizer and
    scheduler step, EMA, and the logging, evaluation and checkpoint hooks, which do nothing
    between their intervals).

    On a CPU, the timer hook (CUDA events) is left out and `process_batch` does not move the
    batch to a GPU.
    """

    def __init__(self, batch_size: int, uratio: int, num_classes: int = 10):
        semilearn = import_usb()
        from semilearn.core.utils import ALGORITHMS
        from semilearn.lighting import get_config

        settings = dict(
            algorithm="fixmatch", net="wrn_28_2", use_cat=True, amp=False, ema_m=0.999,
            batch_size=batch_size, uratio=uratio, num_classes=num_classes, num_labels=40,
            epoch=1024, num_train_iter=1048576, num_eval_iter=5120, num_log_iter=256,
            optim="SGD", lr=0.03, momentum=0.9, weight_decay=5e-4, layer_decay=1.0, clip_grad=0.0,
            hard_label=True, T=0.5, p_cutoff=0.95, ulb_loss_ratio=1.0, img_size=32, crop_ratio=0.875,
            num_workers=0, seed=0, dataset="none", save_dir=tempfile.mkdtemp(prefix="usb_"),
            save_name="fixmatch", use_tensorboard=False, use_wandb=False, use_aim=False, gpu=None,
            distributed=False,
        )  # fmt: skip
        args = get_config(settings)
        self.algorithm = ALGORITHMS["fixmatch"](
            args=args, net_builder=semilearn.nets.wrn_28_2, tb_log=None, logger=None
        )
        algorithm = self.algorithm
        algorithm._hooks = [hook for hook in algorithm._hooks if hook.name != "TimerHook"]
        algorithm.hooks_dict.pop("TimerHook", None)
        algorithm.process_batch = self._process_batch
        algorithm.loader_dict = {}
        algorithm.model.train()
        algorithm.call_hook("before_run")
        algorithm.epoch = 0
        algorithm.call_hook("before_train_epoch")

    def _process_batch(self, **batch):
        """USB's `process_batch` without the move to a GPU: the arguments `train_step` takes."""
        names = self.algorithm.train_step.__code__.co_varnames[
            1 : self.algorithm.train_step.__code__.co_argcount
        ]
        return {name: value for name, value in batch.items() if name in names and value is not None}

    def __call__(self, x_lb: Tensor, y_lb: Tensor, x_ulb_w: Tensor, x_ulb_s: Tensor) -> float:
        algorithm = self.algorithm
        algorithm.call_hook("before_train_step")
        batch = algorithm.process_batch(x_lb=x_lb, y_lb=y_lb, x_ulb_w=x_ulb_w, x_ulb_s=x_ulb_s)
        algorithm.out_dict, algorithm.log_dict = algorithm.train_step(**batch)
        algorithm.call_hook("after_train_step")
        algorithm.it += 1
        return algorithm.log_dict["train/total_loss"]


class WideResNetFeatures(nn.Module):
    """USB's WRN-28-2 up to its pooled features `[B, 128]`; its classifier is sesemi's head."""

    out_features = 128

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.net = import_usb().nets.wrn_28_2(num_classes=num_classes)
        del self.net.classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x, only_feat=True)


def ema_update(average: nn.Module, model: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * weights for parameters and float buffers (foreach
    kernels); integer buffers (batch counters) are copied."""
    with torch.no_grad():
        pairs = [
            *zip(average.parameters(), model.parameters(), strict=True),
            *zip(average.buffers(), model.buffers(), strict=True),
        ]
        floats = [(a, m) for a, m in pairs if a.is_floating_point()]
        integers = [(a, m) for a, m in pairs if not a.is_floating_point()]
        torch._foreach_lerp_([a for a, _ in floats], [m for _, m in floats], 1.0 - decay)
        torch._foreach_copy_([a for a, _ in integers], [m for _, m in integers])


class BareStep:
    """A hand-written FixMatch step on a copy of a WRN-28-2: cross-entropy on the labels plus
    cross-entropy of the strong view against the weak view's confident pseudo-labels, SGD as
    USB's, and an EMA of the weights; the three inputs are concatenated into one forward pass
    (USB's `use_cat`).
    """

    def __init__(self, model: nn.Module, threshold: float = 0.95, decay: float = 0.999):
        self.model = model.train()
        self.average = copy.deepcopy(model)
        self.threshold = threshold
        self.decay = decay
        self.optimizer = torch.optim.SGD(
            model.parameters(), lr=0.03, momentum=0.9, nesterov=True, weight_decay=5e-4
        )

    def __call__(self, x_lb: Tensor, y_lb: Tensor, x_ulb_w: Tensor, x_ulb_s: Tensor) -> Tensor:
        logits = self.model(torch.cat((x_lb, x_ulb_w, x_ulb_s)))["logits"]
        logits_lb, (logits_w, logits_s) = logits[: len(x_lb)], logits[len(x_lb) :].chunk(2)
        with torch.no_grad():
            confidence, pseudo_labels = logits_w.softmax(dim=1).max(dim=1)
            mask = (confidence >= self.threshold).float()
        unsupervised = (F.cross_entropy(logits_s, pseudo_labels, reduction="none") * mask).mean()
        loss = F.cross_entropy(logits_lb, y_lb) + unsupervised
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        ema_update(self.average, self.model, self.decay)
        return loss.detach()


def fixed_batch(
    batch_size: int, uratio: int, num_classes: int = 10, seed: int = 0
) -> dict[str, Tensor]:
    """One batch of normalized-looking 32x32 images: labeled, weak and strong unlabeled views."""
    generator = torch.Generator().manual_seed(seed)
    unlabeled = batch_size * uratio
    return {
        "x_lb": torch.randn(batch_size, 3, 32, 32, generator=generator),
        "y_lb": torch.arange(batch_size) % num_classes,
        "x_ulb_w": torch.randn(unlabeled, 3, 32, 32, generator=generator),
        "x_ulb_s": torch.randn(unlabeled, 3, 32, 32, generator=generator),
    }


def usb_variants(
    batch_size: int, uratio: int, sesemi_step: Callable[[bool, dict], Callable[[int], Tensor]]
) -> dict:
    """The variants of the USB table, by row name, each a function of the step index.

    `sesemi_step(forward_only_targets, initial_state)` builds sesemi's step on the same weights.
    """
    wrn_28_2 = import_usb().nets.wrn_28_2
    batch = fixed_batch(batch_size, uratio)
    usb = USBStep(batch_size, uratio)
    initial = copy.deepcopy(usb.algorithm.model.state_dict())

    model = wrn_28_2(num_classes=10)
    model.load_state_dict(initial)
    bare = BareStep(model)
    return {
        "usb": lambda index: usb(**batch),
        "bare_cat": lambda index: bare(**batch),
        "sesemi_fused": sesemi_step(False, initial, batch),
        "sesemi": sesemi_step(True, initial, batch),
    }
