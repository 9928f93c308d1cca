"""Decode speed of the symbolic model: our engine against HF ``generate`` on the same weights.

Both sides sample ``N`` new tokens (temperature 1, no top-k/top-p, KV cache on) from the same short
prompt, at batch 1 and batch 16, on the same device, dtype and number of CPU threads, after a warm-up,
best of a few interleaved runs. Before timing, the HF twin's logits are checked against ours: in fp32 on
the CPU, then again on the device in the run's dtype.

    python -m benchmarks decode_symbolic --quick                   # 128 tokens
    python -m benchmarks.decode_symbolic --full                    # 512 tokens, best of 5
    python -m benchmarks decode_symbolic --quick --dtype bfloat16  # both sides in bf16
    python -m benchmarks decode_symbolic --compile                 # our step compiled (CPU: opt-in)
    python -m benchmarks decode_symbolic --device cuda             # on a GPU: bf16, CUDA graphs

On a GPU the defaults are bf16 and our step compiled with mode "reduce-overhead" (CUDA graphs) over one
fixed cache length; the eager step is timed too (``ours_eager_tok_s_b1``...), ``compile_fallbacks`` lists
any compile failure that made the "compiled" step run eager, and ``cuda_graph_skips`` counts the graphs
inductor declined to capture (0 is what should be seen).

On CPU in float32 our step is the C++ one when ``scripts/setup.sh`` has built it, else the Python lean
step (``step`` in the JSON says which; ``CADENZA_CPU_KERNEL=0`` forces Python). Every run also reports the
memory-bandwidth limit of a batch-1 step: the bytes it must read (weights and KV cache) over the read
bandwidth measured in the same run (``limit_ms_per_step``, ``fraction_of_limit``).
"""

from __future__ import annotations

import argparse
import json
import sys

# Heavy imports (torch, transformers, cadenza) live inside the functions: importing this module (as
# ``python -m benchmarks`` does, or a test for one helper) costs nothing.

RANDOM_CONFIG = dict(vocab_size=300, dim=256, n_layers=6, n_heads=4, ffn_dim=768, max_seq_len=1024)
PROMPT_LEN = 8


def load_model():
    """The repository's symbolic checkpoint (first by name) if one exists, else a random model of
    the default shape. Returns ``(model, "default" | "random", note)``; a checkpoint that exists but
    fails its sha256 or config check raises ``CheckpointError`` rather than being benchmarked as random.
    """
    import torch

    from cadenza.checkpoints import REPO_CHECKPOINTS, discover
    from cadenza.generators.symbolic.model import SymbolicTransformer, TransformerConfig

    specs = sorted((s for s in discover([REPO_CHECKPOINTS]).values() if s.family == "symbolic"), key=lambda s: s.name)
    if not specs:
        torch.manual_seed(0)  # weight init only; sampling uses explicit generators
        model = SymbolicTransformer(TransformerConfig(**RANDOM_CONFIG))
        return model.eval(), "random", "no symbolic checkpoint in checkpoints/ yet: random weights"
    from cadenza.generators.symbolic.generator import SymbolicGenerator

    generator = SymbolicGenerator.from_checkpoint(specs[0], device="cpu")
    return generator.model.eval(), "default", specs[0].name


def check_parity(model, hf, fp32_tolerance: float = 1e-4) -> float:
    """Max |logit difference| between ours and the HF twin on random tokens, on the models' device and
    in their dtype; raises above ``hardware.check_close``'s tolerance for that dtype."""
    import torch

    from benchmarks.hardware import check_close

    device = model.embed.weight.device
    tokens = torch.randint(0, model.vocab_size, (2, 64), generator=torch.Generator().manual_seed(0)).to(device)
    with torch.inference_mode():
        return check_close("HF twin disagrees with our model", model(tokens), hf(tokens).logits, fp32_tolerance)


def measure(model, hf, batch: int, n_new: int, repeats: int, step_fn=None, cache_len: int | None = None,
            static: bool | None = None) -> dict:
    """Best-of-``repeats`` tokens/s for ours and HF; runs alternate so load drift hits both alike."""
    import torch

    from benchmarks.hardware import timed
    from cadenza.engine.decode import DecodeParams, decode, decode_step

    device = model.embed.weight.device
    prompt = torch.randint(0, model.vocab_size, (batch, PROMPT_LEN), generator=torch.Generator().manual_seed(batch))
    prompt = prompt.to(device)
    mask = torch.ones_like(prompt)

    def ours():
        params = DecodeParams(max_new_tokens=n_new, temperature=1.0, rng=torch.Generator(device).manual_seed(1))
        out = decode(model, prompt, params, step_fn=step_fn or decode_step, cache_len=cache_len, static=static)
        assert out.shape == (batch, PROMPT_LEN + n_new)

    def theirs():
        with torch.inference_mode():
            out = hf.generate(prompt, attention_mask=mask, do_sample=True, top_k=0, top_p=1.0, temperature=1.0,
                              max_new_tokens=n_new, min_new_tokens=n_new, use_cache=True)
        assert out.shape == (batch, PROMPT_LEN + n_new)

    ours(), theirs()  # warm-up (and, for a compiled step, compilation and CUDA graph capture)
    t_ours, t_hf = [], []
    for _ in range(repeats):
        t_ours.append(timed(ours, device))
        t_hf.append(timed(theirs, device))
    tokens = batch * n_new
    return {"ours": tokens / min(t_ours), "hf": tokens / min(t_hf)}


def bytes_per_token(model, mean_position: float) -> float:
    """What a batch-1 step must read: every weight once (the tied embedding too: it is the output
    layer) plus the keys and values of the mean position."""
    c = model.config
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    cache = 2 * c.n_layers * mean_position * c.dim * model.embed.weight.element_size()
    return weights + cache


def _step_kind(device, dtype, compiled: bool) -> str:
    """Which one-token step our side ran: the C++ or Python lean CPU step, or the general forward."""
    import torch

    from cadenza.generators.symbolic import step_kernel

    if device.type == "cpu" and dtype == torch.float32 and not compiled:
        return "c++" if step_kernel.KERNEL.load() is not None else "python"
    return "general (static cache)" if compiled else "general"


def main(quick: bool = True, threads: int | None = 1, device: str = "cpu", dtype: str | None = None,
         compile: bool | None = None) -> dict:
    """Run the benchmark on the repository's symbolic model (see ``load_model``) and return its figures.

    ``threads`` defaults to 1, not to the core count: on these shared 2-core machines two threads
    under load made small decodes many times slower for both implementations, which measures the
    neighbours, not the code. ``None`` uses ``DevicePolicy``'s default (physical cores).
    ``device``/``dtype``/``compile``: see ``run``. A device that is not there raises
    ``DeviceUnavailable`` before anything loads.
    """
    from benchmarks.hardware import parse_dtype
    from cadenza.engine.device import pick_device

    target = pick_device(device)
    run_dtype = parse_dtype(dtype, target)
    model, weights, note = load_model()
    n_new, repeats = (128, 3) if quick else (512, 5)
    return run(model, target=target, dtype=run_dtype, compile=compile, threads=threads, n_new=n_new,
               repeats=repeats, weights=weights, note=note)


def run(model, *, target, dtype, compile: bool | None, threads: int | None, n_new: int, repeats: int,
        batches: tuple[int, ...] = (1, 16), weights: str = "random", note: str = "") -> dict:
    """Time ``model`` (fp32 on the CPU; moved to ``target``/``dtype`` here) against its HF twin.

    Parity is checked in fp32 on the CPU first, then again on ``target`` in ``dtype`` (both sides moved).
    ``compile`` (default ``DevicePolicy``: on CUDA only, where it means CUDA graphs) compiles our step
    over one fixed cache length, so one graph serves every run of a batch size; the eager step is then
    timed too (``ours_eager_*``). Keys ``*_b{batch}`` for each of ``batches``; ``ratio`` and
    ``ours_ms_per_step`` are the first batch's.
    """
    import torch
    import transformers

    from benchmarks.hardware import (bandwidth_fields, compile_fallbacks, cuda_graph_skips, device_name,
                                     read_bandwidth_gbs)
    from cadenza.engine.decode import decode_step
    from cadenza.engine.device import DevicePolicy
    from cadenza.generators.symbolic.hf_parity import to_llama

    policy = DevicePolicy(prefer=str(target), threads=threads, compile=compile)
    compiled = policy.should_compile(target)
    used_threads = policy.apply_threads()
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # generate() warns about unused flags on every call
    try:
        hf = to_llama(model)
        diff = check_parity(model, hf)
        model.to(device=target, dtype=dtype)
        hf.to(device=target, dtype=dtype)
        device_diff = check_parity(model, hf, fp32_tolerance=1e-3)
        _log(f"weights: {weights} ({note}); HF twin max |logit diff| {diff:.1e} (fp32, CPU), {device_diff:.1e} "
             f"on {device_name(target)} in {dtype}; {used_threads} thread(s)")
        # (prefix, step, fixed cache length, static): the first variant is what the policy runs.
        variants = []
        if compiled:
            # One cache length for every run, so the compiled step is one graph (one CUDA graph per batch).
            variants.append(("", policy.maybe_compile(decode_step, target), PROMPT_LEN + n_new, True))
            variants.append(("eager_", None, None, None))
        else:
            variants.append(("", None, None, None))
        result: dict = {}
        with compile_fallbacks() as fallbacks:
            for prefix, step, cache_len, static in variants:
                for batch in batches:
                    r = measure(model, hf, batch, n_new, repeats, step_fn=step, cache_len=cache_len, static=static)
                    result[f"ours_{prefix}tok_s_b{batch}"] = round(r["ours"], 1)
                    if not prefix:
                        result[f"hf_tok_s_b{batch}"] = round(r["hf"], 1)
                    result[f"ratio_{prefix}b{batch}"] = round(r["ours"] / r["hf"], 3)
                    _log(f"{prefix or ('compiled_' if compiled else 'eager_')}batch {batch}: ours {r['ours']:.0f} "
                         f"tok/s, HF generate {r['hf']:.0f} tok/s, ratio {r['ours'] / r['hf']:.2f}")
        step_bytes = bytes_per_token(model, PROMPT_LEN + n_new / 2)
        bandwidth = read_bandwidth_gbs(target, step_bytes)
        first = batches[0]
        ours_ms = 1000.0 / result[f"ours_tok_s_b{first}"]
        result.update({
            "ratio": result[f"ratio_b{first}"],
            "device": target.type,
            "device_name": device_name(target),
            "dtype": str(dtype).removeprefix("torch."),
            "compiled": compiled and not fallbacks,
            "step": _step_kind(target, dtype, compiled),
            "threads": used_threads,
            "new_tokens": n_new,
            "prompt_tokens": PROMPT_LEN,
            "weights": weights,
            "weights_note": note,
            "params_m": round(model.num_parameters() / 1e6, 2),
            "parity_max_abs_logit_diff": diff,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            **bandwidth_fields(step_bytes, ours_ms, bandwidth),
            "device_parity_max_abs_logit_diff": device_diff,
        })
        if compiled:
            result["compile_fallbacks"] = fallbacks  # empty: every compiled step really ran compiled
        if compiled and target.type == "cuda":
            result["cuda_graph_skips"] = cuda_graph_skips()  # 0: the step ran as CUDA graphs
        return result
    finally:
        transformers.logging.set_verbosity(verbosity)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    from benchmarks.hardware import add_device_options
    from cadenza.errors import DeviceUnavailable

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="512 new tokens, best of 5 (default: quick)")
    parser.add_argument("--quick", action="store_true", help="128 new tokens, best of 3 (the default)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for both sides (default 1)")
    add_device_options(parser, default_device="cpu")
    args = parser.parse_args()
    try:
        figures = main(quick=not args.full, threads=args.threads, device=args.device, dtype=args.dtype,
                       compile=args.compile)
    except DeviceUnavailable as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    print(json.dumps(figures))
