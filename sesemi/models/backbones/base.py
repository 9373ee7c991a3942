"""The backbone contract and shared helpers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TypeVar
from unittest import mock

from torch import nn

from sesemi.errors import SesemiError

T = TypeVar("T")


class Backbone(nn.Module):
    """An nn.Module mapping inputs to features `[B, out_features]`."""

    out_features: int

    def freeze(self) -> None:
        """Stops gradients to every parameter and keeps normalization layers in eval mode."""
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self._frozen = True
        self.eval()

    def train(self, mode: bool = True) -> Backbone:
        return super().train(mode and not getattr(self, "_frozen", False))


def reachable(host: str, timeout: float = 3.0) -> bool:
    """Whether an HTTPS connection to `host` opens within `timeout` seconds.

    The attempt runs in a daemon thread because a failing DNS lookup can take much longer than
    any socket timeout.
    """
    result: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


@contextmanager
def _hub_offline() -> Iterator[None]:
    """Makes huggingface_hub use only its cache (instead of retrying for a minute)."""
    try:
        import huggingface_hub.constants as hub
    except ImportError:
        yield
        return
    with mock.patch.object(hub, "HF_HUB_OFFLINE", True):
        yield


def fetch_pretrained(
    name: str, create: Callable[[], T], host: str, cached: Callable[[], bool] | None = None
) -> T:
    """Runs `create`, which downloads weights from `host`, failing fast and in one line.

    When `host` cannot be reached, only the local weight caches are tried (`cached`, when given,
    says whether the weights are there without trying).
    """
    online = reachable(host)
    try:
        if not online and cached is not None and not cached():
            raise FileNotFoundError(name)
        with nullcontext() if online else _hub_offline():
            return create()
    except Exception as error:  # download and cache errors come in many types
        if online:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
            raise SesemiError(f"cannot get pretrained weights for {name!r}: {reason}") from None
        raise SesemiError(
            f"cannot get pretrained weights for {name!r}: {host} is unreachable and they are not in "
            "the local cache (HF_HOME / TORCH_HOME); fetch them once with network access, or set "
            "pretrained=false"
        ) from None
