"""`cadenza train diffusion`: the small text-to-music latent diffusion model (our diffusion default).

1. ``cadenza train audio-data`` renders captioned clips (``data/audio``); ``cadenza train codec`` and
   ``--export`` give the codec whose continuous latent this model denoises.
2. ``cadenza train diffusion --codec DIR`` caches codec latents and MiniLM text states once
   (``<run>/cache``), then trains (seeded; run it again to resume; ``--minutes`` to stop early), logging
   losses to ``<run>/log.jsonl``.
3. ``cadenza train diffusion --codec DIR --export checkpoints/NAME`` writes the checkpoint folder
   (EMA weights, the codec, manifest with data, command and losses).
"""

from __future__ import annotations

# {max_steps} and {name} are filled in from the run being exported.
RECIPE_COMMANDS = ("cadenza train audio-data && cadenza train codec && cadenza train codec --export runs/codec/export && "
                   "cadenza train diffusion --codec runs/codec/export --max-steps {max_steps} && "
                   "cadenza train diffusion --codec runs/codec/export --export checkpoints/{name}")

# A run fine-tuned from a checkpoint: that checkpoint's recipe, then this.
FINE_TUNE_COMMANDS = ("cadenza train audio-data && cadenza train diffusion --codec runs/codec/export --init-from {init_from} "
                      "--run {run} --max-steps {max_steps} --lr {lr}{focus} && "
                      "cadenza train diffusion --run {run} --codec {codec} --export checkpoints/{name}")


def add_arguments(p) -> None:
    """The flags of `cadenza train diffusion`."""
    p.add_argument("--data", default="data/audio", help="clips folder (from `cadenza train audio-data`)")
    p.add_argument("--codec", default="runs/codec/export", help="exported codec folder (codec.safetensors + codec.json)")
    p.add_argument("--run", default="runs/diffusion", help="training run folder (resumes from it)")
    p.add_argument("--stop-at", type=int, metavar="STEP",
                   help="stop (saved, resumable) at this step; the learning-rate schedule still spans --max-steps")
    p.add_argument("--minutes", type=float, help="stop after this many minutes (run again to resume)")
    p.add_argument("--max-steps", type=int, default=4000,
                   help="training steps: the learning-rate schedule's length (a step takes ~1-2 s on 2 idle cores, "
                        "see `seconds` in <run>/log.jsonl; pick steps that fit your time, --minutes only stops early)")
    p.add_argument("--batch", type=int, default=16, help="crops per step")
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--lr", type=float, default=4e-4, help="peak learning rate (lower it to fine-tune with --init-from)")
    p.add_argument("--init-from", metavar="DIR",
                   help="start from this exported checkpoint's model (a text-only model gains the score input at zero)")
    p.add_argument("--focus-t", type=float, metavar="F",
                   help="draw 3/4 of the timesteps below this fraction of the noise schedule (the range a score's "
                        "sketch is performed from: 0.6 covers --strength up to about 0.6), the rest from all of it")
    p.add_argument("--export", metavar="DIR", help="write a checkpoint folder from the run")
    p.add_argument("--name", default="diffusion-folk-small", help="model name for --export")


def run(args) -> int:
    if args.export:
        from cadenza.training import require_run

        require_run(args.run, "diffusion")
        from cadenza.generators.diffusion.export import export_checkpoint

        from cadenza.training import fine_tune_command, read_run_config, recipe_command

        focus_t = read_run_config(args.run)["train"].get("focus_t")
        focus = f" --focus-t {focus_t:g}" if focus_t is not None else ""
        command = (fine_tune_command(FINE_TUNE_COMMANDS, args.run, args.name, codec=args.codec, focus=focus)
                   or recipe_command(RECIPE_COMMANDS, args.run, args.name))
        spec = export_checkpoint(args.run, args.codec, args.data, args.export, args.name, command=command)
        print(f"wrote {spec.directory} (sha256 {spec.sha256[:12]}..., val loss {spec.metrics.get('final_val_loss')})")
        return 0
    from cadenza.generators.diffusion.train import DiffusionTrainConfig, train

    figures = train(DiffusionTrainConfig(data_dir=args.data, codec_dir=args.codec, run_dir=args.run,
                                         max_steps=args.max_steps, minutes=args.minutes, batch=args.batch,
                                         threads=args.threads, seed=args.seed, stop_at=args.stop_at,
                                         init_from=args.init_from, lr=args.lr, focus_t=args.focus_t))
    print(f"trained to step {figures['step']}: {figures}")
    return 0
