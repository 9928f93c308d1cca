"""`cadenza train codec`: the small neural audio codec (SEANet + RVQ, 16 kHz, 4 codebooks x 1024,
50 frames/s) shared by the codec LM and the diffusion family.

1. ``cadenza train audio-data`` renders the captioned clips (``data/audio``).
2. ``cadenza train codec`` trains (seeded; run it again to resume; ``--minutes`` to stop early).
3. ``cadenza train codec --decoder istft --from DIR`` trains a new, frame-rate decoder (inverse-STFT head,
   mel + adversarial losses) for an exported codec, keeping its encoder and quantizer, so models trained
   on its codes and latents stay valid (``--run runs/codec-istft``).
4. ``cadenza train codec --reseat CHECKPOINT --from DIR`` gives a model checkpoint (the codec LM's, the
   diffusion model's) the exported codec at DIR when only its decoder differs (`cadenza.codec.reseat`).
5. ``cadenza train codec --export DIR`` writes ``DIR/codec.safetensors`` + ``DIR/codec.json`` (config,
   validation mel distance and SI-SNR, how it was made); the LM and diffusion recipes take ``--codec DIR``.
"""

from __future__ import annotations

RECIPE_COMMANDS = ("cadenza train audio-data && cadenza train codec --max-steps 6000 && "
                   "cadenza train codec --export runs/codec/export")
DECODER_COMMANDS = ("cadenza train codec --decoder istft --from {codec_dir} --run {run_dir} "
                    "--max-steps {max_steps} --adversarial-from {adversarial_from} --lr {lr}{flux} && "
                    "cadenza train codec --run {run_dir} --export {run_dir}/export")


def add_arguments(p) -> None:
    p.add_argument("--data", default="data/audio", help="clips folder (from `cadenza train audio-data`)")
    p.add_argument("--run", default="runs/codec", help="training run folder (resumes from it)")
    p.add_argument("--max-steps", type=int, default=6000, help="training steps (batches of 8 one-second crops)")
    p.add_argument("--minutes", type=float, help="stop after this many minutes (run again to resume)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    p.add_argument("--export", metavar="DIR", help="write codec.safetensors + codec.json from the run")
    p.add_argument("--decoder", choices=("seanet", "istft"), default="seanet",
                   help="istft: train a new frame-rate decoder for the codec given by --from (encoder and "
                        "quantizer kept, so its codes and latents keep their meaning)")
    p.add_argument("--from", dest="source", metavar="DIR", help="the exported codec a new decoder is trained for")
    p.add_argument("--reseat", metavar="CHECKPOINT",
                   help="put the codec given by --from into this model checkpoint folder (same encoder and "
                        "quantizer, a new decoder: refused otherwise)")
    p.add_argument("--lr", type=float, default=5e-4,
                   help="istft decoder: peak learning rate (lower it to continue a trained decoder)")
    p.add_argument("--flux-weight", type=float, default=0.0, metavar="W",
                   help="istft decoder: weight of the onset loss (log-mel spectral flux: how sharply notes begin)")
    p.add_argument("--adversarial-from", type=int, metavar="STEP",
                   help="istft decoder: add the adversary (MS-STFT discriminator) from this step (default 7000)")


def run(args) -> int:
    if args.reseat:
        from cadenza.codec.reseat import reseat_codec
        from cadenza.errors import InvalidConditioning

        if not args.source:
            raise InvalidConditioning("--reseat CHECKPOINT needs --from DIR: the exported codec to put into it")
        spec = reseat_codec(args.reseat, args.source)
        print(f"{spec.name}: codec replaced by {args.source} (files and manifest in {spec.directory})")
        return 0
    if args.export:
        from cadenza.training import require_run

        require_run(args.run, "codec")
        from cadenza.codec.export import export_codec
        from cadenza.training import read_run_config

        run_config = read_run_config(args.run)
        command = RECIPE_COMMANDS
        if run_config["codec"].get("decoder", "seanet") == "istft":
            train = run_config["train"]
            flux = f" --flux-weight {train['weight_flux']:g}" if train.get("weight_flux") else ""
            command = source_command(train["codec_dir"]) + " && " + DECODER_COMMANDS.format(**train, flux=flux)
        out = export_codec(args.run, args.data, args.export, command=command)
        print(f"wrote {out}")
        return 0
    if args.decoder == "istft":
        from cadenza.codec.decoder_train import DecoderTrainConfig, train_decoder
        from cadenza.errors import InvalidConditioning

        if not args.source:
            raise InvalidConditioning("--decoder istft needs --from DIR: the exported codec whose encoder is kept")
        run = args.run if args.run != "runs/codec" else "runs/codec-istft"
        extra = {} if args.adversarial_from is None else {"adversarial_from": args.adversarial_from}
        train_decoder(DecoderTrainConfig(data_dir=args.data, codec_dir=args.source, run_dir=run, lr=args.lr,
                                         max_steps=args.max_steps, minutes=args.minutes, threads=args.threads,
                                         weight_flux=args.flux_weight, **extra))
        return 0
    from cadenza.codec.train import CodecTrainConfig, train_codec

    train_codec(CodecTrainConfig(data_dir=args.data, run_dir=args.run, max_steps=args.max_steps, minutes=args.minutes,
                                 threads=args.threads))
    return 0


def source_command(codec_dir: str) -> str:
    """The commands that made the exported codec at ``codec_dir`` (its ``codec.json``), else the base recipe's."""
    import json
    from pathlib import Path

    try:
        made = json.loads((Path(codec_dir) / "codec.json").read_text()).get("made_by") or {}
    except (OSError, ValueError):
        return RECIPE_COMMANDS
    return str(made.get("command") or RECIPE_COMMANDS)
