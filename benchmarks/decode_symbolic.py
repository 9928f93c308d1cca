"""Decode speed of the symbolic model: our engine against HF ``generate`` on the same weights.

Both sides sample ``N`` new tokens (temperature 1, no top-k/top-p, KV cache on) from the same short
prompt, at batch 1 and batch 16, on the same number of CPU threads, after a warm-up, best of a few
interleaved runs. Before timing, the HF twin's logits are checked against ours.

    python -m benchmarks decode_symbolic --quick       # 128 tokens
    python -m benchmarks.decode_symbolic --full        # 512 tokens, best of 5
    python -m benchmarks decode_symbolic --compile     # our step compiled by torch.compile (CPU: opt-in)
    python -m benchmarks decode_symbolic --device cuda # bf16, compiled step (CUDA graphs) and eager, on a GPU

On CPU in float32 our step is the C++ one when ``scripts/setup.sh`` has built it, else the Python lean step
(``step`` in the JSON says which; ``CADENZA_CPU_KERNEL=0`` forces Python). Every run also reports the memory-bandwidth limit of a batch-1 step: the bytes it must read (weights and
KV cache) over the read bandwidth measured in the same run (``limit_ms_per_step``, ``fraction_of_limit``).
"""

from __future__ import annotations

import argparse
import json

# Heavy imports (torch, transformers, cadenza) live inside the functions: benchmarks/__main__.py
# imports every benchmark module, and the others should not pay for ours.

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


def check_parity(model, hf) -> float:
    """Max |logit difference| between ours and the HF twin on random tokens; raises above 1e-4."""
    import torch

    tokens = torch.randint(0, model.vocab_size, (2, 64), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        diff = float((model(tokens) - hf(tokens).logits).abs().max())
    if diff > 1e-4:
        raise RuntimeError(f"HF twin disagrees with our model: max logit difference {diff:.2e}")
    return diff


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
        return "c++" if step_kernel.load() is not None else "python"
    return "general (static cache)" if compiled else "general"


def main(quick: bool = True, threads: int | None = 1, device: str = "cpu", dtype: str | None = None,
         compile: bool | None = None) -> dict:
    """Run the benchmark and return its figures.

    ``threads`` defaults to 1, not to the core count: on these shared 2-core machines two threads
    under load made small decodes many times slower for both implementations, which measures the
    neighbours, not the code. ``None`` uses ``DevicePolicy``'s default (physical cores).
    ``device``/``dtype``/``compile``: where both sides run, in which dtype (default ``pick_dtype``: fp32
    on CPU, bf16 on CUDA), and whether our step is compiled (default ``DevicePolicy``: on CUDA, where
    it means CUDA graphs). Parity is checked in fp32 on the CPU before anything moves.
    """
    import torch
    import transformers

    from benchmarks.hardware import bandwidth_fields, read_bandwidth_gbs, device_name
    from cadenza.engine.decode import decode_step
    from cadenza.engine.device import DevicePolicy, pick_device, pick_dtype
    from cadenza.generators.symbolic.hf_parity import to_llama

    target = pick_device(device)
    run_dtype = getattr(torch, dtype) if dtype else pick_dtype(target)
    policy = DevicePolicy(prefer=str(target), threads=threads, compile=compile)
    compiled = policy.should_compile(target)
    used_threads = policy.apply_threads()
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # generate() warns about unused flags on every call
    try:
        model, weights, note = load_model()
        hf = to_llama(model)
        diff = check_parity(model, hf)
        model.to(device=target, dtype=run_dtype)
        hf.to(device=target, dtype=run_dtype)
        print(f"weights: {weights} ({note}); HF twin max |logit diff| {diff:.1e} (fp32); running on "
              f"{device_name(target)} in {run_dtype}; {used_threads} thread(s)", flush=True)
        n_new, repeats = (128, 3) if quick else (512, 5)
        # (prefix, step, fixed cache length, static): the first variant is what the policy runs.
        variants = []
        if compiled:
            # One cache length for every run, so the compiled step is one graph (one CUDA graph per batch).
            variants.append(("", policy.maybe_compile(decode_step, target), PROMPT_LEN + n_new, True))
            variants.append(("eager_", None, None, None))
        else:
            variants.append(("", None, None, None))
        result: dict = {}
        for prefix, step, cache_len, static in variants:
            for batch in (1, 16):
                r = measure(model, hf, batch, n_new, repeats, step_fn=step, cache_len=cache_len, static=static)
                result[f"ours_{prefix}tok_s_b{batch}"] = round(r["ours"], 1)
                if not prefix:
                    result[f"hf_tok_s_b{batch}"] = round(r["hf"], 1)
                result[f"ratio_{prefix}b{batch}"] = round(r["ours"] / r["hf"], 3)
                print(f"{prefix or ('compiled_' if compiled else 'eager_')}batch {batch}: ours {r['ours']:.0f} tok/s, "
                      f"HF generate {r['hf']:.0f} tok/s, ratio {r['ours'] / r['hf']:.2f}", flush=True)
        step_bytes = bytes_per_token(model, PROMPT_LEN + n_new / 2)
        bandwidth = read_bandwidth_gbs(target, step_bytes)
        ours_ms = 1000.0 / result["ours_tok_s_b1"]
        result.update({
            "ratio": result["ratio_b1"],
            "device": target.type,
            "device_name": device_name(target),
            "dtype": str(run_dtype).removeprefix("torch."),
            "compiled": compiled,
            "step": _step_kind(target, run_dtype, compiled),
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
        })
        return result
    finally:
        transformers.logging.set_verbosity(verbosity)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="512 new tokens, best of 5 (default: quick)")
    parser.add_argument("--quick", action="store_true", help="128 new tokens, best of 3 (the default)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for both sides (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="default: fp32 on CPU, bf16 on CUDA")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="compile our step (default: on CUDA only)")
    args = parser.parse_args()
    print(json.dumps(main(quick=not args.full, threads=args.threads, device=args.device, dtype=args.dtype,
                          compile=args.compile)))
