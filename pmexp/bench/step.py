"""End-to-end training steps, host cost per call and per-op times of every dropout variant, interleaved.

    python -m pmexp.bench step --out runs/bench-step                       # everything (GPU, ~8 min)
    python -m pmexp.bench step --parts host op                             # the two micro tables only
    python -m pmexp.bench step --cells bert_large_512 --modes eager graphed --reps 7
    python -m pmexp.bench step --parts step --cells bert_large_512 --modes eager \
        --variants standard packed tempo:standard tempo:packed     # Tempo against memory=none (issue 12.5)

Why interleaved: on the H200 two runs of the same step in one process differed by 13%, so variants
are never compared across runs. Each variant gets its own copy of the model (same weights, same
batch), and the timing loop goes standard, packed, seeded, ... , standard, packed, ... for
``--reps`` rounds of ``--steps`` steps (more where a round would last under ``--min-round-s``);
the throughput ratio of a variant is taken per round against that round's standard and reported as
median [min, max] over rounds. A step is forward, backward and AdamW, timed by wall clock with a
device sync at its end. Modes: ``eager``; ``compiled`` (``torch.compile`` of the model); ``graphed``
(the whole step captured as one CUDA graph and replayed: no host cost at all, so what is left is the
kernels).

``host``: host microseconds per call on a 4096-element tensor, where the GPU keeps up, so the time
is what Python and the launch cost (forward; forward + sum + backward), for torch's ``F.dropout``,
each variant's C++ path and its Triton path. ``op``: 201M elements (TinyBERT B64 S512's attention
probabilities), fp32 and bf16: one call timed with CUDA events (launch included) and the median of
a back-to-back loop (``triton.testing.do_bench``), forward and backward.
A variant ``tempo:<v>`` is dropout ``<v>`` with Tempo's layers on top (``pmexp.tempo.apply`` after
``pmexp.dropout.apply``, the trainer's ``memory=tempo`` order); its ratio is against plain
``standard``, i.e. against ``memory=none`` at the same batch, and where ``<v>`` runs too (at the
same batch) a second column gives it per round against ``<v>``: Tempo's target. Eager attention only.
A variant ``unfused:<v>`` runs ``<v>`` with eager attention's dropout and matmul unfused (the matmul
keeps its copy of the dropped probabilities; :mod:`pmexp.dropout.attention_matmul`), to price the fusion.
``again:standard`` is a second standard model, timed like a variant: its ratio (ideally 1) and spread
are the cell's noise floor, against which the other ratios are read. A suffix ``@B`` runs a variant
at batch ``B`` instead of the cell's (``standard@63 tempo:packed@85``: each at its largest batch
under a memory cap, Tempo's second target); the ratio is then of throughput, the variant's seq/s over
standard's in the same round (at equal batches that is standard's step time over the variant's).
Each round runs the variants in an order rotated by one from the last. ``--interleave step``: within a
round the variants alternate step by step, each step synced, which host-bound cells need (in blocks the
H200 host's drift spread MiniLM's per-round ratios over 0.6-1.7, A/A included; runs/2026-11-30-eager-host).
Writes ``step.json`` / ``step.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from pmexp.bench.dropout import report
from pmexp.dropout import apply, attention_matmul, dropout, native
from pmexp.dropout import functional as fn
from pmexp.dropout.traced import inductor_options
from pmexp.experiment.envinfo import env_info
from pmexp.experiment.models import apply_tempo

__all__ = ["CELLS", "compile_apart", "run", "main"]

VARIANTS = ("standard", "packed", "seeded", "packed_exact")
TEMPO_VARIANTS = ("tempo:standard", "tempo:packed", "tempo:seeded")
UNFUSED_VARIANTS = ("unfused:packed", "unfused:seeded", "unfused:packed_exact")
CONTROL = "again:standard"  # a second standard model: its ratio is the cell's noise floor (A/A)
MODES = ("eager", "compiled", "graphed")
_BERT_LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
CELLS = {  # name: (BertConfig keywords, dtype, seq_len, batch, attention)
    "minilm_mrpc": (dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
                    torch.float32, 128, 32, "eager"),  # the fidelity preset's shape (fp32, seq 128, B32)
    "minilm_bf16": (dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
                    torch.bfloat16, 128, 32, "eager"),  # the same under bf16 autocast: host-bound, fused attention
    "tinybert_512": (dict(hidden_size=312, num_hidden_layers=4, num_attention_heads=12, intermediate_size=1200),
                     torch.bfloat16, 512, 64, "eager"),
    "bert_large_512": (_BERT_LARGE, torch.bfloat16, 512, 16, "eager"),
    "bert_large_512_sdpa": (_BERT_LARGE, torch.bfloat16, 512, 16, "sdpa"),
    "bert_large_2048": (_BERT_LARGE, torch.bfloat16, 2048, 4, "eager"),
}


def _sync_time(fn: Callable[[], object], n: int, sync: Callable[[], None] = torch.cuda.synchronize) -> float:
    """Seconds a call of ``fn``, over ``n`` calls between two ``sync``s (the device's work included)."""
    sync()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return (time.perf_counter() - start) / n


def split_variant(name: str) -> tuple[str, str]:
    """``"tempo:packed"`` -> ``("tempo", "packed")``, ``"packed"`` -> ``("none", "packed")``: memory, dropout."""
    memory, _, variant = split_batch(name)[0].rpartition(":")
    return memory or "none", variant


def split_batch(name: str) -> tuple[str, int | None]:
    """``"tempo:packed@85"`` -> ``("tempo:packed", 85)``; no suffix: ``(name, None)`` (the cell's batch)."""
    base, at, batch = name.partition("@")
    if not at:
        return name, None
    if not batch.isdigit() or int(batch) < 1:
        raise ValueError(f"variant {name!r}: the batch after '@' must be a positive integer, e.g. packed@69")
    return base, int(batch)


def reference_variant(variants) -> str:
    """The variant the ratios are taken against: plain ``standard``, at whatever batch (``standard@63``)."""
    for name in variants:
        if split_batch(name)[0] == "standard":
            return name
    raise ValueError("--variants must include standard (or standard@B): ratios are taken against it")


def throughput_ratio(reference_s: float, reference_batch: int, variant_s: float, variant_batch: int) -> float:
    """The variant's seq/s over the reference's, from one round's step times (s) and batches."""
    return (variant_batch / variant_s) / (reference_batch / reference_s)


def memory_none_twin(name: str, variants) -> str | None:
    """For a Tempo variant, the same dropout without Tempo at the same batch, if it runs in the round
    (``tempo:packed`` -> ``packed``, ``tempo:packed@91`` -> ``packed@91``): Tempo's target is against it."""
    base, batch = split_batch(name)
    memory, variant = split_variant(base)
    twin = variant + (f"@{batch}" if batch else "")
    return twin if memory == "tempo" and twin in variants else None


def build_cell_model(cell: str, name: str, device: str = "cuda", padded: bool = False):
    """``cell``'s model with variant ``name`` applied, its batch and autocast dtype. ``padded``: a 2D padding
    mask (rows of 1/4 to all of the sequence), from which transformers builds the 4D mask in every forward,
    as in the trainer; else a fixed 4D mask (eager) or None (SDPA), which a CUDA graph can capture."""
    import transformers

    config_kw, dtype, seq, batch, attention = CELLS[cell]
    batch = split_batch(name)[1] or batch
    torch.manual_seed(0)
    # problem_type set as the first call would set it (2 labels, integer targets): a compiled model's first call
    # otherwise compiles a frame guarded on problem_type None and changes it, so the second compiles it all again
    config = transformers.BertConfig(vocab_size=30522, max_position_embeddings=max(512, seq),
                                     attn_implementation=attention, problem_type="single_label_classification",
                                     **config_kw)
    with torch.device(device):  # initialised on the GPU: seconds instead of a CPU init of 335M parameters
        model = transformers.BertForSequenceClassification(config).train()
    memory, variant = split_variant(name)  # "unfused" (make_step handles it) and "again" are not memory options
    apply(model, variant)
    if memory == "tempo":
        if attention != "eager":
            raise ValueError(f"{name}: Tempo's attention replaces eager attention; cell {cell} uses {attention}")
        apply_tempo(model, variant)
    g = torch.Generator(device=device).manual_seed(1)
    # Unpadded: fixed-length batches. Eager attention gets the 4D additive mask transformers would build
    # from all-ones (transformers builds it with a host-to-device copy, which a CUDA graph cannot capture);
    # SDPA gets None, which is what transformers passes SDPA for all-ones.
    mask = torch.zeros(batch, 1, seq, seq, device=device) if attention == "eager" else None
    if padded:
        lengths = torch.randint(seq // 4, seq + 1, (batch, 1), device=device, generator=g)
        mask = (torch.arange(seq, device=device) < lengths).long()
    inputs = dict(input_ids=torch.randint(1000, 30000, (batch, seq), device=device, generator=g),
                  attention_mask=mask, labels=torch.randint(0, 2, (batch,), device=device, generator=g))
    return model, inputs, dtype


def compile_apart(model: torch.nn.Module, options: dict | None = None, backend: str = "inductor") -> Callable:
    """``torch.compile(model, options=options, backend=backend)`` with compiled frames of its own, for several
    models in one process.

    Why: Dynamo keeps compiled frames per code object, and every model of a class shares its ``forward``'s. With
    the variants' models in one process, a call found its own frame only after failing the guards of the others'
    (most recently called first): a host cost no one-model training run pays, paid by every variant compiled
    differently from the model called before it (``again:standard`` shares standard's frames, so the A/A control
    paid it less: compiled MiniLM's "TorchDynamo Cache Lookup" 290 us a step profiled for packed, 215-234 for the
    standards; runs/2026-11-30-compiled-host, call 11); and all counted against one recompile limit (8), past
    which Dynamo runs a model eagerly. Here each model is called from a function with a code object of its own
    (Dynamo inlines the model into that function's frame, as into its own forward's)."""

    def forward(*args, **kwargs):
        return model(*args, **kwargs)

    forward.__code__ = forward.__code__.replace()  # a new code object: its own compiled frames and limit
    return torch.compile(forward, backend=backend, options=options or None)


def warm_step(cell: str, variant: str, mode: str) -> Callable[[], None]:
    """One training step of ``cell`` with ``variant`` in ``mode``, built and warmed up (compiled, in
    ``compiled`` mode); in ``graphed`` mode capturable but not yet captured (:func:`capture`)."""
    model, inputs, dtype = build_cell_model(cell, variant)
    autocast = dtype != torch.float32
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, capturable=mode == "graphed",
                                  foreach=True)
    # the trainer's compile: Inductor options the variant needs (seeded: pmexp.dropout.traced.inductor_options)
    forward = compile_apart(model, inductor_options(split_variant(variant)[1])) if mode == "compiled" else model

    fusion = attention_matmul.unfused if split_variant(variant)[0] == "unfused" else contextlib.nullcontext

    def step() -> None:
        with fusion():  # backward too: a checkpointed layer recomputes its forward there
            with torch.autocast("cuda", dtype=dtype, enabled=autocast, cache_enabled=mode != "graphed"):
                loss = forward(**inputs).loss
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=mode != "graphed")

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up (and compilation) off the default stream, as capture requires
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    return step


def capture(step: Callable[[], None], pool=None) -> Callable[[], None]:
    """``step`` (from :func:`warm_step` in ``graphed`` mode) captured as one CUDA graph, into ``pool``
    (a ``torch.cuda.graph_pool_handle()``) if given; the returned call replays it."""
    gc.collect()  # torch 2.11's graph() no longer does: a dead graph freed by the GC mid-capture invalidates it
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        step()
    # The graph holds raw addresses, not references: the step's model, optimizer and inputs (its closure)
    # must outlive it (returning graph.replay alone freed them, and the next variant's model reused their
    # memory: illegal accesses).
    return functools.partial(_replay, graph, step)


def make_step(cell: str, variant: str, mode: str) -> Callable[[], None]:
    """One training step of ``cell`` with ``variant`` in ``mode``, ready to call (warmed up; in ``graphed``
    mode captured)."""
    step = warm_step(cell, variant, mode)
    return capture(step) if mode == "graphed" else step


def _replay(graph: torch.cuda.CUDAGraph, keep_alive: Callable[[], None]) -> None:
    graph.replay()


def ratio_stats(ratios: list[float]) -> dict:
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "n": len(ratios)}


def rotated(variants, round_: int) -> list:
    """The round's order: rotated by one each round, so no variant always runs first or right after
    the same one (an order effect would otherwise bias its ratio the same way every round)."""
    k = round_ % len(variants)
    return [*variants[k:], *variants[:k]]


def schedule(order: list, steps: int, by_step: bool) -> list:
    """A round's run order for ``steps`` steps of each variant in ``order``: in blocks (A A ... B B ...), or
    alternating step by step (A B ... A B ...), where a drift of the host's speed hits every variant alike.
    Host-bound cells need the latter: in blocks of 20 steps the H200 host's drift spread per-round ratios over
    0.6-1.7, A/A included; step by step MiniLM's A/A read 0.997 (runs/2026-11-30-eager-host)."""
    return [v for _ in range(steps) for v in order] if by_step else [v for v in order for _ in range(steps)]


def steps_per_round(step_s: float, steps: int, min_round_s: float) -> int:
    """At least ``steps``, and enough for a round to last ``min_round_s``: a host-bound 15 ms step in
    rounds of 6 read 1.043x and 0.898x for two identical paths (runs/2026-11-30-fuse-policy)."""
    return max(steps, math.ceil(min_round_s / max(step_s, 1e-6)))


def run_cell(cell: str, mode: str, variants=VARIANTS, reps: int = 5, steps: int = 8,
             min_round_s: float = 0.5, by_step: bool = False) -> list[dict]:
    """Interleave the variants' steps; one row per variant with its throughput and ratio to standard.
    Rounds are ``steps`` steps, or more where that lasts under ``min_round_s`` (see :func:`steps_per_round`);
    ``by_step``: the variants alternate step by step within a round, each step synced (:func:`schedule`)."""
    _, _, seq, batch, _ = CELLS[cell]
    peaks = {}
    torch._dynamo.reset()  # once per cell: a reset between variants would recompile the earlier ones
    # Graphed: every variant's graph captures into one memory pool, so the cell needs the largest
    # graph's activations, not their sum (four BERT-large S2048 graphs, one pool each, ran out of the
    # H200's 140 GB: runs/2026-11-30-compiled-next). Safe here: a step's graph keeps nothing it
    # allocates past its end (parameters, grads and optimizer state come from the warm-up, outside
    # capture; the loss dies inside), and replays run one at a time on one stream. And every variant
    # warms up before any captures: a warm-up's activations are eager memory, which the pool's cannot
    # serve, so a warm-up after a capture needs both (BERT-large S2048: ~54 GB each, beside four models'
    # ~22 GB of weights and optimizer state: out of memory at 997ee1a, runs/2026-11-30-tempo-native).
    runners = {variant: warm_step(cell, variant, mode) for variant in variants}
    if mode == "graphed":
        pool = torch.cuda.graph_pool_handle()
        runners = {variant: capture(step, pool) for variant, step in runners.items()}
    for variant in variants:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        runners[variant]()
        torch.cuda.synchronize()
        # Graphed: a replay allocates nothing (its memory is the shared pool's, taken at capture), so
        # there is no per-variant peak to read: None (the eager cell gives the step's peak).
        peaks[variant] = None if mode == "graphed" else (torch.cuda.max_memory_allocated() - before) / 2**20
    reference = reference_variant(variants)
    steps = steps_per_round(_sync_time(runners[reference], 2), steps, min_round_s)
    times: dict[str, list[float]] = {v: [] for v in variants}
    for round_ in range(reps):
        order = rotated(variants, round_)  # A B C D, B C D A, ...
        if not by_step:
            for variant in order:
                times[variant].append(_sync_time(runners[variant], steps))
            continue
        spent = dict.fromkeys(order, 0.0)
        for variant in schedule(order, steps, by_step=True):
            spent[variant] += _sync_time(runners[variant], 1)
        for variant in order:
            times[variant].append(spent[variant] / steps)
    rows = []
    batches = {v: split_batch(v)[1] or batch for v in variants}

    def round_ratios(against: str, variant: str) -> dict:  # median [min, max] of the per-round seq/s ratios
        return ratio_stats([throughput_ratio(s, batches[against], t, batches[variant])
                             for s, t in zip(times[against], times[variant], strict=True)])

    for variant in variants:
        median_s = statistics.median(times[variant])
        rows.append({"cell": cell, "mode": mode, "variant": variant, "seq_len": seq, "batch": batches[variant],
                     "step_ms_median": median_s * 1e3, "seq_s": batches[variant] / median_s, "steps_per_round": steps,
                     "ratio_vs_standard": round_ratios(reference, variant),
                     "step_peak_above_resident_mb": peaks[variant]})
        twin = memory_none_twin(variant, variants)
        if twin is not None:  # Tempo's target: per round, against the same dropout without Tempo
            rows[-1]["ratio_vs_memory_none"] = round_ratios(twin, variant)
    del runners
    torch.cuda.empty_cache()
    return rows


def _triton_only(function: Callable) -> Callable:
    def call(*args):
        saved = fn._native_kernels
        fn._native_kernels = lambda x: None
        try:
            return function(*args)
        finally:
            fn._native_kernels = saved

    return call


def host_table(n: int = 4096, calls: int = 3000) -> list[dict]:
    """Host microseconds per call (forward; forward + sum + backward) on a tensor small enough that
    the GPU keeps up."""
    x = torch.randn(n, device="cuda", requires_grad=True)
    paths = {"F.dropout": lambda v: F.dropout(v, 0.1, True)}
    for variant in ("packed", "seeded"):
        paths[f"{variant} (native)"] = lambda v, variant=variant: dropout(v, 0.1, True, variant)
        paths[f"{variant} (triton)"] = _triton_only(lambda v, variant=variant: dropout(v, 0.1, True, variant))
    paths["packed_exact"] = lambda v: dropout(v, 0.1, True, "packed_exact")
    rows = []
    for name, path in paths.items():
        if "native" in name and native.load() is None:
            continue
        for _ in range(200):
            path(x).sum().backward()
        forward_us = _sync_time(lambda path=path: path(x), calls) * 1e6
        both_us = _sync_time(lambda path=path: path(x).sum().backward(), calls) * 1e6
        rows.append({"path": name, "numel": n, "forward_us": forward_us, "forward_backward_us": both_us})
    base = rows[0]
    for row in rows:
        row["forward_vs_F"] = row["forward_us"] / base["forward_us"]
        row["forward_backward_vs_F"] = row["forward_backward_us"] / base["forward_backward_us"]
    return rows


def _event_ms(fn: Callable[[], object], repeats: int = 15) -> float:
    """Median of single calls timed with CUDA events: the launch is inside the measurement."""
    samples = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end))
    return statistics.median(samples)


def _op_rows(dtype: torch.dtype, n: int, p: float) -> list[dict]:
    from triton.testing import do_bench

    x = torch.randn(n, device="cuda", dtype=dtype, requires_grad=True)
    grad = torch.randn_like(x)
    paths = {"native torch": lambda: torch.ops.aten.native_dropout(x, p, True)}
    if native.load() is not None:
        paths["packed (native)"] = lambda: dropout(x, p, True, "packed")
        paths["seeded (native)"] = lambda: dropout(x, p, True, "seeded")
    paths["packed (triton)"] = _triton_only(lambda: dropout(x, p, True, "packed"))
    rows = []
    for name, forward in paths.items():
        out = forward()
        if name == "native torch":
            def backward(mask=out[1]):
                return torch.ops.aten.native_dropout_backward(grad, mask, 1 / (1 - p))
        else:
            def backward(y=out):
                return torch.autograd.grad(y, x, grad, retain_graph=True)
        rows.append({"path": name, "dtype": str(dtype).removeprefix("torch."), "numel": n,
                     "fwd_single_ms": _event_ms(forward), "fwd_loop_ms": do_bench(forward, return_mode="median"),
                     "bwd_single_ms": _event_ms(backward), "bwd_loop_ms": do_bench(backward, return_mode="median")})
    return rows


def op_table(n: int = 201_326_592, p: float = 0.1) -> list[dict]:
    """Forward and backward of one dropout on ``n`` elements: single call (events) and loop median."""
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        rows += _op_rows(dtype, n, p)
        torch.cuda.empty_cache()
    return rows

def _section(title: str, columns: dict[str, Callable[[dict], str]], rows: list[dict]) -> list[str]:
    """A titled Markdown table, one row per dict; ``columns`` maps each header to its cell's formatter."""
    if not rows:
        return []
    lines = [title, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r) for cell in columns.values()) + " |" for r in rows]
    return [*lines, ""]


def _ratio_text(r: dict, key: str = "ratio_vs_standard") -> str:
    q = r.get(key)
    return "" if q is None else f"{q['median']:.3f} [{q['min']:.3f}, {q['max']:.3f}]"


def not_measured(rows: list[dict]) -> str:
    """A line per cell and mode that failed (out of memory), after the table that leaves them out."""
    return "".join(f"\nNot measured: {r['cell']} {r['mode']}: {r['error']}\n" for r in rows if "error" in r)


def _peak_cell(row: dict) -> str:
    peak = row["step_peak_above_resident_mb"]
    return "n/a (graphed: the pool's)" if peak is None else f"{peak:,.0f}"


def to_markdown(steps: list[dict], host: list[dict], ops: list[dict], env: dict, args: dict) -> str:
    lines = [f"Dropout step benchmark on {env['device_name']} (torch {env['torch']}, triton {env['triton']}, "
             f"transformers {env['transformers']}, commit {env['pmexp_commit']}, "
             f"backend {native.backend()}"
             + (f", Tempo GELU {env['tempo_gelu']}" if "tempo_gelu" in env else "") + f"); settings {args}.", ""]
    lines += _section("Steps, variants interleaved; ratio = the variant's seq/s / standard's (at one batch: "
                      "standard's step time / the variant's), per round: median [min, max].", {
                          "cell": lambda r: r["cell"], "mode": lambda r: r["mode"], "variant": lambda r: r["variant"],
                          "step ms": lambda r: f"{r['step_ms_median']:.2f}", "seq/s": lambda r: f"{r['seq_s']:.1f}",
                          "ratio vs standard": _ratio_text,
                          **({"Tempo vs memory=none": lambda r: _ratio_text(r, "ratio_vs_memory_none")}
                             if any("ratio_vs_memory_none" in r for r in steps) else {}),
                          "step peak MB": _peak_cell}, steps)
    lines += _section("Host cost per call (4096 elements; GPU keeps up).", {
        "path": lambda r: r["path"], "forward us": lambda r: f"{r['forward_us']:.1f}",
        "fwd+sum+bwd us": lambda r: f"{r['forward_backward_us']:.1f}",
        "forward vs F.dropout": lambda r: f"{r['forward_vs_F']:.2f}",
        "fwd+bwd vs F.dropout": lambda r: f"{r['forward_backward_vs_F']:.2f}"}, host)
    lines += _section("Per op: single call with CUDA events (launch included) / median of a back-to-back loop.", {
        "path": lambda r: r["path"], "dtype": lambda r: r["dtype"], "numel": lambda r: f"{r['numel']:,}",
        **{f"{pass_} {kind} ms": (lambda r, k=f"{pass_}_{kind}_ms": f"{r[k]:.3f}")
           for pass_ in ("fwd", "bwd") for kind in ("single", "loop")}}, ops)
    return "\n".join(lines) + "\n"

def run(parts=("host", "op", "step"), cells=tuple(CELLS), modes=MODES, variants=VARIANTS, reps: int = 5,
        steps: int = 8, out: Path | None = None, min_round_s: float = 0.5, by_step: bool = False) -> dict:
    """Run the chosen parts; print Markdown and write ``step.json`` / ``step.md`` under ``out``."""
    if not torch.cuda.is_available():
        raise SystemExit("pmexp.bench step needs a CUDA device")
    env = {**env_info(), "dropout_backend": native.backend(), "native_why_not": native.why_not()}
    if any(v.startswith("tempo:") for v in variants):  # builds Tempo GELU's extension here, not in a timed step
        from pmexp.tempo import native as tempo_native

        env["tempo_gelu"] = "native" if tempo_native.load() is not None else f"triton ({tempo_native.why_not()})"
    host = host_table() if "host" in parts else []
    ops = op_table() if "op" in parts else []
    settings = {"reps": reps, "steps": steps, "min_round_s": min_round_s, "variants": list(variants),
                "interleave": "step" if by_step else "round"}
    rows = []

    def save(echo: bool) -> None:
        table = to_markdown([r for r in rows if "error" not in r], host, ops, env, settings)
        table += not_measured(rows)
        report([{"host": host, "op": ops, "step": rows, "settings": settings}], table, env, out, "step", echo)

    for cell in cells if "step" in parts else ():
        for mode in modes:
            try:
                rows += run_cell(cell, mode, variants, reps, steps, min_round_s, by_step)
            except torch.OutOfMemoryError as error:
                rows.append({"cell": cell, "mode": mode, "error": f"OOM: {error}"[:200]})
                torch.cuda.empty_cache()
            print(f"done {cell} {mode}", flush=True)
            if out is not None:  # keep what was measured, tables included, if a later cell dies
                save(echo=False)
    save(echo=True)
    return {"host": host, "op": ops, "step": rows}


KNOWN_VARIANTS = VARIANTS + TEMPO_VARIANTS + UNFUSED_VARIANTS + (CONTROL,)


def _variant_arg(name: str) -> str:
    """argparse type of ``--variants``: a known variant, optionally with ``@B``."""
    try:
        base, _ = split_batch(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if base not in KNOWN_VARIANTS:
        raise argparse.ArgumentTypeError(f"unknown variant {base!r}: use one of {', '.join(KNOWN_VARIANTS)}")
    return name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pmexp.bench step", description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["host", "op", "step"], choices=["host", "op", "step"])
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), type=_variant_arg,
                        help=f"of {', '.join(KNOWN_VARIANTS)}; '@B' after one runs it at batch B (tempo:packed@85)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--min-round-s", type=float, default=0.5,
                        help="more steps a round where --steps of a cell's step last less (host-bound cells)")
    parser.add_argument("--interleave", default="round", choices=["round", "step"],
                        help="each variant's steps of a round in a block (default, the records' method), or the "
                             "variants alternating step by step, each step synced (host-bound cells: MiniLM, SDPA)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        reference_variant(args.variants)
    except ValueError as error:
        parser.error(str(error))
    run(args.parts, args.cells, args.modes, args.variants, args.reps, args.steps, args.out, args.min_round_s,
        by_step=args.interleave == "step")
