"""Codec LM decode speed: our engine against audiocraft's ``LMModel.generate`` on the same weights.

A MusicGen-small-shaped LM with random weights (24 layers, d 1024, 16 heads, 4 codebooks x 2048,
cross-attention to 64 text states; ``--quick``: 4 layers) is built by audiocraft's builders. Our
`CodecLM` takes the very same tensors (no copy). Both sides sample ``N`` frames with CFG (batch 1 ->
2 rows), top-k 250, temperature 1, from the same 64 conditioning states (a fixed stand-in for T5's
output), on the same number of CPU threads (default 1: on the shared 2-core machine two threads per side
were slower and noisier), after a warm-up, best of interleaved runs. Before timing, our logits are
checked against audiocraft's. Where the time goes: both read every weight once per step (memory bound);
audiocraft also recomputes the cross-attention keys/values of the 64 text states at every step (~13
GFLOP at 24 layers) and grows its KV cache by concatenation, while we compute them once per piece and
write into a preallocated cache.

    python -m benchmarks decode_codec --quick
    CADENZA_BENCH_THREADS=2 python -m benchmarks decode_codec     # threads for both sides (default 1)

The last line is JSON; ``ratio`` = our steps/s / audiocraft's steps/s.
"""

from __future__ import annotations

import os
import sys
import time

TEXT_STATES = 64


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fixed_condition_provider(states):
    """A stand-in for audiocraft's ``ConditioningProvider`` that returns ``states`` [1, S, dim] for
    every conditional row and zeros for null rows (what the T5 conditioner gives for no text)."""
    import torch
    from torch import nn

    class Fixed(nn.Module):
        def tokenize(self, conditions):
            return conditions

        def forward(self, conditions):
            rows = [states[0] if c.text.get("description") is not None else torch.zeros_like(states[0])
                    for c in conditions]
            stacked = torch.stack(rows)
            return {"description": (stacked, torch.ones(stacked.shape[:2], dtype=torch.long))}

    return Fixed()


def build(num_layers: int):
    """``(audiocraft LMModel, our CodecLM sharing its weights, cross states [1, 64, 1024])``."""
    import torch

    from cadenza.generators.codec_lm.audiocraft_configs import build_audiocraft_models, encodec_cfg, musicgen_lm_cfg
    from cadenza.generators.codec_lm.audiocraft_load import lm_config_from_cfg, lm_state_from_audiocraft
    from cadenza.generators.codec_lm.lm import CodecLM

    cfg = musicgen_lm_cfg(n_q=4, card=2048, dim=1024, num_heads=16, num_layers=num_layers)
    ref, _ = build_audiocraft_models(cfg, encodec_cfg(), seed=0)
    with torch.device("meta"):
        ours = CodecLM(lm_config_from_cfg(cfg))
    ours.load_state_dict(lm_state_from_audiocraft(ref.state_dict()), assign=True)
    states = torch.randn(1, TEXT_STATES, 1024, generator=torch.Generator().manual_seed(0)) * 0.5
    ref.condition_provider = _fixed_condition_provider(states)
    return ref.eval(), ours.eval(), states


def check_parity(ref, ours, states) -> float:
    import torch

    seq = torch.randint(0, 2049, (2, 4, 8), generator=torch.Generator().manual_seed(1))
    cross = torch.cat([states, torch.zeros_like(states)])
    tensors = {"description": (cross, torch.ones(cross.shape[:2], dtype=torch.long))}
    with torch.inference_mode():
        diff = float((ref(seq, [], condition_tensors=tensors) - ours(seq, cross=cross)).abs().max())
    if diff > 1e-3:
        raise RuntimeError(f"our LM disagrees with audiocraft's: max logit difference {diff:.2e}")
    return diff


def run_ours(ours, states, frames: int, seed: int):
    import torch

    from cadenza.engine.decode import DecodeParams, decode_codebooks
    from cadenza.generators.codec_lm.lm import CodecLMRunner

    runner = CodecLMRunner(ours, cross=torch.cat([states, torch.zeros_like(states)]))
    prompt = torch.zeros(1, 4, 0, dtype=torch.long)
    params = DecodeParams(max_new_tokens=frames, temperature=1.0, top_k=250, cfg_scale=3.0,
                          pad_id=ours.special_token_id, rng=torch.Generator().manual_seed(seed))
    return decode_codebooks(runner, prompt, params, uncond_prompt=prompt, start_id=ours.special_token_id)


def run_audiocraft(ref, frames: int, seed: int):
    import torch
    from audiocraft.modules.conditioners import ConditioningAttributes

    torch.manual_seed(seed)
    attributes = [ConditioningAttributes(text={"description": "benchmark"})]
    return ref.generate(None, attributes, max_gen_len=frames, use_sampling=True, temp=1.0, top_k=250,
                        cfg_coef=3.0)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(quick: bool) -> dict:
    import torch

    threads = int(os.environ.get("CADENZA_BENCH_THREADS", "1"))
    torch.set_num_threads(threads)
    layers, frames, repeats = (4, 16, 2) if quick else (24, 24, 3)
    _log(f"building a MusicGen-small-shaped LM ({layers} layers, d 1024, 4 x 2048, {TEXT_STATES} text states); "
         f"{threads} thread(s)")
    ref, ours, states = build(layers)
    diff = check_parity(ref, ours, states)
    _log(f"logit parity with audiocraft: max |diff| {diff:.2e}")
    steps = frames + 3  # the delay pattern adds K - 1 steps
    with torch.inference_mode():
        _log("warm-up")
        run_ours(ours, states, 4, 0)
        run_audiocraft(ref, 4, 0)
        ours_s, theirs_s = [], []
        for r in range(repeats):
            ours_s.append(_timed(lambda: run_ours(ours, states, frames, r)))
            theirs_s.append(_timed(lambda: run_audiocraft(ref, frames, r)))
            _log(f"run {r + 1}/{repeats}: ours {1000 * ours_s[-1] / steps:.1f} ms/step, "
                 f"audiocraft {1000 * theirs_s[-1] / steps:.1f} ms/step")
    ours_ms = 1000 * min(ours_s) / steps
    theirs_ms = 1000 * min(theirs_s) / steps
    return {"layers": layers, "frames": frames, "steps": steps, "cfg": 3.0, "top_k": 250, "threads": threads,
            "text_states": TEXT_STATES, "logit_max_diff": diff, "ours_ms_per_step": round(ours_ms, 2),
            "audiocraft_ms_per_step": round(theirs_ms, 2), "ratio": round(theirs_ms / ours_ms, 3)}


if __name__ == "__main__":
    import json

    print(json.dumps(main("--quick" in sys.argv)))
