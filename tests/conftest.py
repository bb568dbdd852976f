"""Shared fixtures: the real conf/ composed and shrunk to a CPU run of seconds.

`make_cfg(*overrides)` composes conf/train.yaml as `python -m pmexp.train` would, then shrinks it:
a random-init 2-layer BERT of hidden size 32, 2 optimizer steps of batch 8, CPU, no logger, records in a fresh
tmp dir, MRPC-shaped data written by the test itself (the real corpus is not needed, nor copied).
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    # Triton's interpreter runs the kernels on CPU tensors (tests/test_kernels_interpret.py,
    # test_tempo_kernels.py), but only if TRITON_INTERPRET is set before anything imports triton, and
    # collecting other test modules imports it (transformers, Inductor). A CPU-only run has no real kernel.
    os.environ.setdefault("TRITON_INTERPRET", "1")

import random  # noqa: E402
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

# Random init (model.pretrained=false): named models load pretrained weights by default.
TINY_BERT = [
    "model=tinybert",
    "model.pretrained=false",
    "model.config.num_hidden_layers=2",
    "model.config.hidden_size=32",
    "model.config.num_attention_heads=2",
    "model.config.intermediate_size=64",
]
TINY_GPT2 = ["model=gpt2", "model.pretrained=false", "model.config.n_layer=1", "model.config.n_embd=32",
             "model.config.n_head=2", "model.config.vocab_size=128", "seq_len=16"]
TINY_VIT = ["model=vit_b16", "model.pretrained=false", "model.config.num_hidden_layers=1",
            "model.config.hidden_size=32", "model.config.num_attention_heads=2", "model.config.intermediate_size=64",
            "model.config.image_size=32", "model.config.patch_size=8", "model.num_labels=10"]
SHRINK = [
    "trainer.max_steps=2",
    "trainer.batch_size=8",
    "trainer.eval_batch_size=16",
    "trainer.device=cpu",
    "trainer.log_every=1",
    "trainer.timing_warmup=1",
    "data.max_train_samples=32",
    "data.max_eval_samples=16",
    "data.num_train=16",
    "data.num_eval=8",
    "logger=none",
]

@pytest.fixture(autouse=True)
def _no_old_cuda_graph_dies_mid_capture():
    """On a GPU, collect the last test's garbage before the next one: a CUDA graph left in a reference cycle
    (make_graphed_callables makes them) is freed whenever the cyclic GC runs, and if that is inside another
    capture, the capture is invalidated and the context with it (H200, runs/2026-11-30-compiled-native: graph
    tests failed at moving places). torch.cuda.graph no longer collects on entry (torch 2.11)."""
    if torch.cuda.is_available():
        import gc

        gc.collect()
    yield


@pytest.fixture(params=["native", "triton"])
def compiled_draw(request, monkeypatch):
    """Compiled packed's draw on CUDA: the C++ op (where the extension builds) or the Triton kernel."""
    from pmexp.dropout import native, traced

    if request.param == "triton":
        monkeypatch.setattr(traced, "_native_draws", lambda x: False)
    elif native.load() is None:
        pytest.skip(f"no C++ extension here: {native.why_not()}")
    return request.param


def nonzero_randn(*shape: int, device: str | None = None, dtype: torch.dtype | None = None,
                  requires_grad: bool = False) -> torch.Tensor:
    """``torch.randn`` with its exact zeros made 1: a dropout test that reads the keep mask as ``y != 0`` needs an
    input without zeros. CUDA's randn is exactly 0 about once in 8M elements (its Box-Muller at u = 1; H200: 112-143
    in 2**30, runs/2026-11-30-compiled-host call 7), which once failed a correct mask's test (call 5)."""
    x = torch.randn(*shape, device=device, dtype=dtype)
    return x.masked_fill_(x == 0, 1.0).requires_grad_(requires_grad)


_WORDS = "the a market company said shares rose fell percent year new stock price quarter profit".split()


@pytest.fixture(scope="module")
def tiny_cell() -> Iterator[str]:
    """A bench cell (``pmexp.bench.step.CELLS``) of a 2-layer, 32-wide BERT, fp32, seq 16, batch 4, eager
    attention, for the benches' CPU tests, registered for the module's tests: its name."""
    from pmexp.bench import step

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(step.CELLS, "tiny", (dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                intermediate_size=64), torch.float32, 16, 4, "eager"))
        yield "tiny"


def write_fake_mrpc(folder: Path, n_train: int = 48, n_eval: int = 24, seed: int = 0) -> Path:
    """MRPC-shaped TSVs (header, 5 columns, a stray double quote) with made-up sentences."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train.tsv", n_train), ("validation.tsv", n_eval)):
        lines = ["label\tid1\tid2\tsentence1\tsentence2"]
        for i in range(n):
            s1 = " ".join(rng.choices(_WORDS, k=rng.randint(5, 20)))
            s2 = " ".join(rng.choices(_WORDS, k=rng.randint(5, 20))) + (' "' if i % 7 == 0 else "")
            lines.append(f"{int(i % 3 != 0)}\t{1000 + i}\t{2000 + i}\t{s1}\t{s2}")
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="session")
def mrpc_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_mrpc(tmp_path_factory.mktemp("mrpc"))


@pytest.fixture
def make_cfg(tmp_path: Path, mrpc_dir: Path) -> Callable[..., DictConfig]:
    """Compose the real config, shrunk; later overrides win. `job=` names the job dir."""

    def make(*overrides: str, job: str = "job", tiny: list[str] | None = None) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):  # clears GlobalHydra on exit
            return compose(
                "train",
                overrides=[*(TINY_BERT if tiny is None else tiny), *SHRINK, f"data.dir={mrpc_dir}",
                           f"job_dir={tmp_path / job}", *overrides],
            )

    return make
