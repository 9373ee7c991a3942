"""Compiling a module with `torch.compile`, or running it as it is where compiling is not possible.

https://pytorch.org/docs/stable/generated/torch.compile.html
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

logger = logging.getLogger(__name__)


def compile_in_place(module: nn.Module) -> bool:
    """Compiles the calls of `module` with `torch.compile`; its state dict keeps its keys.

    Compiling happens at the first call, and again for each new kind of call (input shapes,
    gradients on or off, train or eval mode). Where it is not possible (Python or platform
    unsupported, no C++ compiler, an operation the compiler cannot handle), the module logs one
    line and runs uncompiled from then on. Copies of the module (e.g. the EMA's) run uncompiled.

    Args:
        module: The module to compile.

    Returns:
        Whether the module will run compiled (False when compiling is not possible at all).
    """
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        logger.warning("torch.compile is not supported here; %s runs uncompiled", type(module).__name__)
        return False
    compiled = torch.compile(module._call_impl)

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return compiled(*args, **kwargs)
        except Exception as error:  # the compiler's errors come in many types
            failure = error
        # Uncompiled, a mistake of the caller's raises its usual error, without the compiler's.
        outputs = module._call_impl(*args, **kwargs)
        module._compiled_call_impl = None
        reason = (str(failure).strip().splitlines() or [type(failure).__name__])[0][:200]
        logger.warning("torch.compile failed (%s); %s runs uncompiled", reason, type(module).__name__)
        return outputs

    module._compiled_call_impl = call
    return True
