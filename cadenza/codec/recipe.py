"""`cadenza train codec`: the small neural audio codec (SEANet + RVQ, 16 kHz, 4 codebooks x 1024,
50 frames/s) shared by the codec LM and the diffusion family.

1. ``cadenza train audio-data`` renders the captioned clips (``data/audio``).
2. ``cadenza train codec`` trains (seeded; run it again to resume; ``--minutes`` to stop early).
3. ``cadenza train codec --export DIR`` writes ``DIR/codec.safetensors`` + ``DIR/codec.json`` (config,
   validation mel distance and SI-SNR, how it was made); the LM and diffusion recipes take ``--codec DIR``.
"""

from __future__ import annotations

RECIPE_COMMANDS = ("cadenza train audio-data && cadenza train codec --max-steps 6000 && "
                   "cadenza train codec --export runs/codec/export")


def add_arguments(p) -> None:
    p.add_argument("--data", default="data/audio", help="clips folder (from `cadenza train audio-data`)")
    p.add_argument("--run", default="runs/codec", help="training run folder (resumes from it)")
    p.add_argument("--max-steps", type=int, default=6000, help="training steps (batches of 8 one-second crops)")
    p.add_argument("--minutes", type=float, help="stop after this many minutes (run again to resume)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    p.add_argument("--export", metavar="DIR", help="write codec.safetensors + codec.json from the run")


def run(args) -> int:
    if args.export:
        from cadenza.codec.export import export_codec

        out = export_codec(args.run, args.data, args.export, command=RECIPE_COMMANDS)
        print(f"wrote {out}")
        return 0
    from cadenza.codec.train import CodecTrainConfig, train_codec

    train_codec(CodecTrainConfig(data_dir=args.data, run_dir=args.run, max_steps=args.max_steps, minutes=args.minutes,
                                 threads=args.threads))
    return 0
