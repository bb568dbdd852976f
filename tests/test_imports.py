"""The PM-Drop core imports torch alone: no Hydra, W&B, transformers or (on CPU) triton."""

import subprocess
import sys

import torch


def test_core_imports_torch_alone():
    code = (
        "import sys, pmexp.masks, pmexp.dropout, pmexp.tempo\n"
        "heavy = {'hydra', 'omegaconf', 'wandb', 'transformers', 'datasets', 'evaluate'}\n"
        "print(sorted(heavy & set(sys.modules)), 'triton' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")[0]
    assert out.startswith("[]"), out
    if not torch.cuda.is_available():  # triton is loaded only when a CUDA device may need the kernels
        assert out.endswith("False"), out
