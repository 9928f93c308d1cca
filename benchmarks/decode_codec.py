"""Codec LM decode speed: our engine against audiocraft's ``LMModel.generate`` on the same weights.

A MusicGen-small-shaped LM with random weights (24 layers, d 1024, 16 heads, 4 codebooks x 2048,
cross-attention to 64 text states; ``--quick`` on CPU: 4 layers) is built by audiocraft's builders. Our
`CodecLM` takes the very same tensors. Both sides sample ``N`` frames with CFG (batch 1 -> 2 rows),
top-k 250, temperature 1, from the same 64 conditioning states (a fixed stand-in for T5's output), on the
same device, in the same dtype, on the same number of CPU threads (default 1: on the shared 2-core
machine two threads per side were slower and noisier), after a warm-up, best of interleaved runs.
Before timing, our logits are checked against audiocraft's in fp32 on the CPU, and again after both
models moved to the device and dtype. Where the time goes: both read every weight once per step (memory
bound); audiocraft also recomputes the cross-attention keys/values of the 64 text states at every step
(~13 GFLOP at 24 layers) and grows its KV cache by concatenation, while we compute them once per piece
and write into a preallocated cache.

    python -m benchmarks decode_codec --quick
    python -m benchmarks decode_codec --quick --dtype bfloat16 --compile  # the GPU code path, on the CPU
    CADENZA_BENCH_THREADS=2 python -m benchmarks decode_codec     # threads for both sides (default 1)
    python -m benchmarks decode_codec --device cuda                # on a GPU: 24 layers, bf16, CUDA graphs

On a GPU the model is always the full 24 layers (``--quick``: 100 frames instead of 250), in bf16 (both
sides: audiocraft runs on bf16 weights, no autocast; ``audiocraft_precision``), with our step compiled in
mode "reduce-overhead" (CUDA graphs) over one fixed cache length; our eager step is timed too
(``ours_eager_ms_per_step``). Without audiocraft installed (the bare GPU image) our side is timed alone
(``ratio`` null, ``reference_missing`` says why).

Also reported: the step's memory-bandwidth limit (bytes one step must read over the read bandwidth
measured in the same run), ``x_realtime`` (50 frames per second of audio, one step per frame) and
whether the issue's target of <= 2 ms per step is met. ``our_step``: which step our side ran (on a float32
CPU, the C++ step where it is built); with the C++ step, ``ours_module_ms_per_step`` times the module
forward on the same weights in the same run.

The last line is JSON; ``ratio`` = our steps/s / audiocraft's steps/s.
"""

from __future__ import annotations

import os
import sys

TEXT_STATES = 64


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fixed_condition_provider(holder: dict):
    """A stand-in for audiocraft's ``ConditioningProvider`` that returns ``holder["states"]`` [1, S, dim]
    for every conditional row and zeros for null rows (what the T5 conditioner gives for no text)."""
    import torch
    from torch import nn

    class Fixed(nn.Module):
        def tokenize(self, conditions):
            return conditions

        def forward(self, conditions):
            # ``states`` is read at call time, so moving the benchmark to a device/dtype moves it too
            states = holder["states"][0]
            rows = [states if c.text.get("description") is not None else torch.zeros_like(states) for c in conditions]
            stacked = torch.stack(rows)
            return {"description": (stacked, torch.ones(stacked.shape[:2], dtype=torch.long, device=stacked.device))}

    return Fixed()


def build(num_layers: int, reference: bool = True, *, dim: int = 1024, num_heads: int = 16, card: int = 2048):
    """``(audiocraft LMModel or None, our CodecLM, cross states [1, 64, dim])``, fp32 on the CPU.

    With ``reference`` our model takes the very tensors of a model built by audiocraft's builders;
    without (audiocraft not installed, e.g. on a bare GPU machine) it is our model alone, with random
    weights of the same shape. ``dim``/``num_heads``/``card`` default to MusicGen-small's (tests shrink them).
    """
    import torch

    from cadenza.generators.codec_lm.audiocraft_configs import build_audiocraft_models, encodec_cfg, musicgen_lm_cfg
    from cadenza.generators.codec_lm.audiocraft_load import lm_config_from_cfg, lm_state_from_audiocraft
    from cadenza.generators.codec_lm.lm import CodecLM, init_weights

    cfg = musicgen_lm_cfg(n_q=4, card=card, dim=dim, num_heads=num_heads, num_layers=num_layers)
    states = torch.randn(1, TEXT_STATES, dim, generator=torch.Generator().manual_seed(0)) * 0.5
    if not reference:
        torch.manual_seed(0)
        ours = CodecLM(lm_config_from_cfg(cfg))
        init_weights(ours)
        return None, ours.eval(), states
    ref, _ = build_audiocraft_models(cfg, encodec_cfg(), seed=0)
    with torch.device("meta"):
        ours = CodecLM(lm_config_from_cfg(cfg))
    ours.load_state_dict(lm_state_from_audiocraft(ref.state_dict()), assign=True)
    ref.condition_provider = _fixed_condition_provider(holder := {"states": states})
    ref.states_holder = holder  # ``to_device`` swaps the tensor the provider reads
    return ref.eval(), ours.eval(), states


def reference_available() -> str | None:
    """None if audiocraft imports; else why not (the benchmark then times our side alone)."""
    from cadenza.compat import import_audiocraft
    from cadenza.errors import MissingDependency

    try:
        import_audiocraft()
    except MissingDependency as exc:
        return str(exc)
    return None


def to_device(ref, ours, states, device, dtype):
    """Move both models and the text states; returns the moved states.

    The models share tensors (``build``), so each is moved explicitly: moving one alone would leave the
    other's parameters behind. ``check_parity`` afterwards confirms both arrived."""
    ours.to(device=device, dtype=dtype)
    states = states.to(device=device, dtype=dtype)
    if ref is not None:
        ref.to(device=device, dtype=dtype)
        ref.states_holder["states"] = states
    return states


def parity_logits(ref, ours, states):
    """``(audiocraft's logits or None, ours)`` ``[2, 4, 8, card]`` on random codes, CFG rows (text, null),
    on the models' device and in their dtype."""
    import torch

    seq = torch.randint(0, ours.config.card + 1, (2, 4, 8), generator=torch.Generator().manual_seed(1))
    seq = seq.to(states.device)
    cross = torch.cat([states, torch.zeros_like(states)])
    tensors = {"description": (cross, torch.ones(cross.shape[:2], dtype=torch.long, device=states.device))}
    with torch.inference_mode():
        theirs = ref(seq, [], condition_tensors=tensors) if ref is not None else None
        return theirs, ours(seq, cross=cross)


def run_ours(ours, states, frames: int, seed: int, step_fn=None, cache_len: int | None = None,
             static: bool | None = None):
    import torch

    from cadenza.engine.decode import DecodeParams, decode_codebooks, decode_step
    from cadenza.generators.codec_lm.lm import CodecLMRunner

    device = states.device
    runner = CodecLMRunner(ours, cross=torch.cat([states, torch.zeros_like(states)]))
    prompt = torch.zeros(1, 4, 0, dtype=torch.long, device=device)
    params = DecodeParams(max_new_tokens=frames, temperature=1.0, top_k=250, cfg_scale=3.0,
                          pad_id=ours.special_token_id, rng=torch.Generator(device).manual_seed(seed))
    return decode_codebooks(runner, prompt, params, uncond_prompt=prompt, start_id=ours.special_token_id,
                            step_fn=step_fn or decode_step, cache_len=cache_len, static=static)


def run_audiocraft(ref, frames: int, seed: int):
    import torch
    from audiocraft.modules.conditioners import ConditioningAttributes

    torch.manual_seed(seed)
    attributes = [ConditioningAttributes(text={"description": "benchmark"})]
    return ref.generate(None, attributes, max_gen_len=frames, use_sampling=True, temp=1.0, top_k=250,
                        cfg_coef=3.0)


def _step_kind(ours, device, dtype, compiled: bool) -> str:
    """Which one-frame step our side ran: the C++ CPU step, or the module forward (compiled or not)."""
    import torch

    from cadenza.generators.codec_lm import step, step_kernel

    if (device.type == "cpu" and dtype == torch.float32 and not compiled and step.supports(ours)
            and step_kernel.KERNEL.load() is not None):
        return "c++"
    return "module (compiled, static cache)" if compiled else "module"


class _without_kernel:
    """While inside, ``ours`` steps through its module forward (``CADENZA_CPU_KERNEL=0``)."""

    def __init__(self, ours) -> None:
        self.ours = ours

    def __enter__(self) -> None:
        from cadenza.generators.codec_lm import step_kernel

        self.saved = os.environ.get("CADENZA_CPU_KERNEL")
        os.environ["CADENZA_CPU_KERNEL"] = "0"
        step_kernel.KERNEL.forget()
        self.ours._step_weights = None  # rebuilt at the next setup_cache: without the kernel

    def __exit__(self, *exc) -> None:
        from cadenza.generators.codec_lm import step_kernel

        if self.saved is None:
            os.environ.pop("CADENZA_CPU_KERNEL", None)
        else:
            os.environ["CADENZA_CPU_KERNEL"] = self.saved
        step_kernel.KERNEL.forget()
        self.ours._step_weights = None


def bytes_per_step(ours, mean_position: float, rows: int = 2) -> float:
    """What one step must read: every weight but the embeddings (one row of each is read), the
    cross-attention keys/values of the text states and the self-attention cache at the mean position,
    for the ``rows`` of a CFG batch."""
    c = ours.config
    size = next(ours.parameters()).element_size()
    weights = sum(p.numel() for name, p in ours.named_parameters() if not name.startswith("emb.")) * size
    cross = rows * c.num_layers * 2 * TEXT_STATES * c.dim * size
    cache = rows * c.num_layers * 2 * mean_position * c.dim * size
    return weights + cross + cache


def main(quick: bool, device: str = "cpu", dtype: str | None = None, compile: bool | None = None) -> dict:
    """Run the benchmark and return its figures.

    ``device``/``dtype``/``compile``: where both sides run, in which dtype (default ``pick_dtype``: fp32
    on CPU, bf16 on CUDA), and whether our step is compiled (default ``DevicePolicy``: on CUDA, where it
    means CUDA graphs over a static cache). On CUDA the model is always the full 24 layers; ``--quick``
    only shortens the piece. A device that is not there raises ``DeviceUnavailable`` before anything
    is built.
    """
    from benchmarks.hardware import parse_dtype
    from cadenza.engine.device import pick_device

    target = pick_device(device)
    run_dtype = parse_dtype(dtype, target)
    if target.type == "cuda":
        layers, frames, repeats = (24, 100, 3) if quick else (24, 250, 3)
    else:
        layers, frames, repeats = (4, 16, 2) if quick else (24, 24, 3)
    threads = int(os.environ.get("CADENZA_BENCH_THREADS", "1"))
    return run(layers=layers, frames=frames, repeats=repeats, target=target, dtype=run_dtype, compile=compile,
               threads=threads)


def run(*, layers: int, frames: int, repeats: int, target, dtype, compile: bool | None, threads: int,
        dim: int = 1024, num_heads: int = 16, card: int = 2048) -> dict:
    """Build the LM (``build``), check parity, move both sides to ``target``/``dtype``, check again, time.

    ``compile`` (default ``DevicePolicy``: on CUDA only) compiles our step over one fixed cache length
    (one graph for the warm-up and every timed run); the eager step is then timed too, after them.
    """
    import torch

    from benchmarks.hardware import (bandwidth_fields, check_close, compile_fallbacks, cuda_graph_skips,
                                     device_name, read_bandwidth_gbs, timed)
    from cadenza.engine.decode import decode_step
    from cadenza.engine.device import DevicePolicy

    torch.set_num_threads(threads)
    policy = DevicePolicy(prefer=str(target), compile=compile)
    compiled = policy.should_compile(target)
    _log(f"building a MusicGen-small-shaped LM ({layers} layers, d {dim}, 4 x {card}, {TEXT_STATES} text states); "
         f"{device_name(target)}, {dtype}, {threads} thread(s), our step {'compiled' if compiled else 'eager'}")
    missing = reference_available()
    if missing:
        _log(f"no reference: {missing}; timing our side alone (ratio null)")
    ref, ours, states = build(layers, reference=missing is None, dim=dim, num_heads=num_heads, card=card)
    theirs, fp32_logits = parity_logits(ref, ours, states)
    diff = None
    if ref is not None:
        diff = check_close("our LM disagrees with audiocraft's", fp32_logits, theirs, 1e-3)
        _log(f"logit parity with audiocraft (fp32, CPU): max |diff| {diff:.2e}")
    states = to_device(ref, ours, states, target, dtype)
    theirs, mine = parity_logits(ref, ours, states)
    vs_fp32 = check_close(f"our LM on {target} in {dtype} disagrees with itself in fp32 on the CPU",
                          mine, fp32_logits.to(target), 1e-3)
    device_diff = check_close("our LM disagrees with audiocraft's", mine, theirs, 1e-3) if ref is not None else None
    _log(f"after the move to {target} in {dtype}: max |diff| vs our fp32 CPU logits {vs_fp32:.2e}"
         + (f", vs audiocraft {device_diff:.2e}" if ref is not None else ""))
    steps = frames + 3  # the delay pattern adds K - 1 steps
    cache_len = 1 + steps  # one length for warm-up and timed runs: one graph
    step_fn = policy.maybe_compile(decode_step, target) if compiled else None
    static = True if compiled else None
    ours_s, theirs_s, eager_s = [], [], []
    with torch.inference_mode(), compile_fallbacks() as fallbacks:
        _log("warm-up" + (" (compiling our step and capturing its graph)" if compiled else ""))
        run_ours(ours, states, frames, 0, step_fn, cache_len, static)
        run_ours(ours, states, frames, 0, step_fn, cache_len, static)
        if ref is not None:
            run_audiocraft(ref, 4, 0)
        for r in range(repeats):
            ours_s.append(timed(lambda: run_ours(ours, states, frames, r, step_fn, cache_len, static), target))
            if ref is not None:
                theirs_s.append(timed(lambda: run_audiocraft(ref, frames, r), target))
            _log(f"run {r + 1}/{repeats}: ours {1000 * ours_s[-1] / steps:.2f} ms/step"
                 + (f", audiocraft {1000 * theirs_s[-1] / steps:.2f} ms/step" if theirs_s else ""))
        if compiled:  # after every compiled run: an eager run may swap the cache the graph was captured on
            run_ours(ours, states, frames, 0)
            for r in range(repeats):
                eager_s.append(timed(lambda: run_ours(ours, states, frames, r), target))
            _log(f"eager step: {1000 * min(eager_s) / steps:.2f} ms/step")
        step = _step_kind(ours, target, dtype, compiled)
        module_s = []
        if step == "c++":  # the module forward on the same weights, as the in-run reference for the kernel
            with _without_kernel(ours):
                run_ours(ours, states, frames, 0)
                for r in range(repeats):
                    module_s.append(timed(lambda: run_ours(ours, states, frames, r), target))
            _log(f"module step (no C++ kernel): {1000 * min(module_s) / steps:.2f} ms/step")
    ours_ms = 1000 * min(ours_s) / steps
    theirs_ms = 1000 * min(theirs_s) / steps if theirs_s else None
    step_bytes = bytes_per_step(ours, steps / 2)
    frame_ms = 1000.0 / 50  # MusicGen's codec: 50 frames per second, one step per frame
    result = {"layers": layers, "frames": frames, "steps": steps, "cfg": 3.0, "top_k": 250, "threads": threads,
              "text_states": TEXT_STATES, "logit_max_diff": diff, "ours_ms_per_step": round(ours_ms, 2),
              "audiocraft_ms_per_step": round(theirs_ms, 2) if theirs_ms else None,
              "ratio": round(theirs_ms / ours_ms, 3) if theirs_ms else None, "reference_missing": missing,
              "device": target.type, "device_name": device_name(target), "dtype": str(dtype).removeprefix("torch."),
              "compiled": compiled and not fallbacks, "our_step": step,
              "ours_module_ms_per_step": round(1000 * min(module_s) / steps, 2) if module_s else None,
              **bandwidth_fields(step_bytes, ours_ms, read_bandwidth_gbs(target, step_bytes)),
              "x_realtime": round(frame_ms / ours_ms, 2), "target_ms_per_step": 2.0,
              "meets_target": bool(ours_ms <= 2.0),
              "device_logit_max_diff": device_diff, "device_vs_fp32_logit_max_diff": vs_fp32,
              "audiocraft_precision": (f"{str(dtype).removeprefix('torch.')} weights, no autocast"
                                       if ref is not None else None)}
    if compiled:
        result["ours_eager_ms_per_step"] = round(1000 * min(eager_s) / steps, 4)
        result["compile_fallbacks"] = fallbacks  # empty: the compiled step really ran compiled
    if compiled and target.type == "cuda":
        result["cuda_graph_skips"] = cuda_graph_skips()  # 0: the step ran as CUDA graphs
    return result


if __name__ == "__main__":
    import argparse
    import json

    from benchmarks.hardware import add_device_options
    from cadenza.errors import DeviceUnavailable

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 layers and 16 frames on CPU; 100 frames on CUDA")
    add_device_options(parser, default_device="cpu")
    args = parser.parse_args()
    try:
        figures = main(args.quick, device=args.device, dtype=args.dtype, compile=args.compile)
    except DeviceUnavailable as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    print(json.dumps(figures))
