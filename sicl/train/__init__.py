"""Training: the SICL-AT / direct fine-tuning recipe (``sicl_at``). tiny-omni pretraining is its own package,
:mod:`sicl.pretrain`.

The package itself is callable, so ``sicl.train(config, **keys)`` is the notebook API's
:func:`sicl.api.train` while ``sicl.train.sicl_at`` stays importable.
"""

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from sicl.api import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
