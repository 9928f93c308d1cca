"""`cadenza train codec-lm`: the small text-to-music codec LM (``musicgen-folk-small``).

1. ``cadenza train audio-data`` and ``cadenza train codec`` (+ ``--export``) first.
2. ``cadenza train codec-lm --prepare --codec runs/codec/export``: encode every clip with the codec and
   every caption with all-MiniLM-L6-v2 (cached in ``data/codec_lm``).
3. ``cadenza train codec-lm``: train (seeded; run again to resume; ``--minutes`` to stop early).
4. ``cadenza train codec-lm --export checkpoints/musicgen-folk-small --codec runs/codec/export``.
"""

from __future__ import annotations

# {max_steps} and {name} are filled in from the run being exported.
RECIPE_COMMANDS = ("cadenza train audio-data && cadenza train codec && cadenza train codec --export runs/codec/export && "
                   "cadenza train codec-lm --prepare --codec runs/codec/export && "
                   "cadenza train codec-lm --max-steps {max_steps} && "
                   "cadenza train codec-lm --export checkpoints/{name} --codec runs/codec/export")

# A run fine-tuned from a checkpoint: that checkpoint's recipe, then this.
FINE_TUNE_COMMANDS = ("cadenza train audio-data && cadenza train codec-lm --prepare --codec runs/codec/export && "
                      "cadenza train codec-lm --init-from {init_from} --run {run} --max-steps {max_steps} --lr {lr} && "
                      "cadenza train codec-lm --run {run} --export checkpoints/{name} --codec {codec}")


def add_arguments(p) -> None:
    p.add_argument("--prepare", action="store_true", help="encode the clips and captions (needs --codec)")
    p.add_argument("--codec", default="runs/codec/export", help="an exported codec folder (codec.safetensors + codec.json)")
    p.add_argument("--data", default="data/audio", help="clips folder (from `cadenza train audio-data`)")
    p.add_argument("--cache", default="data/codec_lm", help="encoded codes + caption states")
    p.add_argument("--run", default="runs/codec_lm", help="training run folder (resumes from it)")
    p.add_argument("--max-steps", type=int, default=2500, help="training steps")
    p.add_argument("--batch", type=int, default=8, help="crops per step")
    p.add_argument("--crop-frames", type=int, default=400,
                   help="codec frames per crop (400 = 8 s, a whole clip: the window the model then writes in one go)")
    p.add_argument("--stop-at", type=int, metavar="STEP",
                   help="stop (saved, resumable) at this step; the learning-rate schedule still spans --max-steps")
    p.add_argument("--minutes", type=float, help="stop after this many minutes (run again to resume)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (lower it to fine-tune with --init-from)")
    p.add_argument("--init-from", metavar="DIR",
                   help="start from this exported checkpoint's LM (a text-only model gains the score input at zero)")
    p.add_argument("--export", metavar="DIR", help="write a checkpoint folder from the run")
    p.add_argument("--name", default="musicgen-folk-small", help="model name for --export")


def run(args) -> int:
    if args.prepare:
        import torch

        from cadenza.codec.export import load_codec_dir
        from cadenza.generators.codec_lm.lm_data import encode_clips
        from cadenza.tokenizers.text import TextEncoder

        torch.set_num_threads(args.threads)
        counts = encode_clips(args.data, load_codec_dir(args.codec), TextEncoder(), args.cache)
        print(f"{args.cache}: {counts}")
        return 0
    if args.export:
        from cadenza.generators.codec_lm.lm_export import export_lm

        from cadenza.training import fine_tune_command, recipe_command

        command = (fine_tune_command(FINE_TUNE_COMMANDS, args.run, args.name, codec=args.codec)
                   or recipe_command(RECIPE_COMMANDS, args.run, args.name))
        spec = export_lm(args.run, args.cache, args.codec, args.export, args.name, command=command)
        print(f"wrote {spec.directory} (metrics {spec.metrics})")
        return 0
    from cadenza.generators.codec_lm.lm_train import LMTrainConfig, train_lm

    train_lm(LMTrainConfig(cache_dir=args.cache, run_dir=args.run, max_steps=args.max_steps, minutes=args.minutes,
                           batch=args.batch, crop_frames=args.crop_frames, threads=args.threads,
                           stop_at=args.stop_at, init_from=args.init_from, lr=args.lr))
    return 0
