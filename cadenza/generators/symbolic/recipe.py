"""`cadenza train symbolic`: the whole recipe that rebuilds the default symbolic model.

1. ``--prepare``: corpus -> token cache. The corpus is ``--corpus DIR`` (a folder with MANIFEST.tsv and
   midi/, e.g. the shared cache), else it is rebuilt from the installed music21 package into
   ``data/corpus`` (slow: ~1 h for the whole corpus on 2 cores).
2. training (seeded, resumable: run it again to continue), logging to ``<run>/log.jsonl``.
3. ``--export DIR``: checkpoint folder with weights, tokenizer, manifest (data, command, losses).
"""

from __future__ import annotations

import sys
from pathlib import Path

from cadenza.data.corpus import given_corpus, read_manifest, rebuild_from_music21


# How remi-folk-small was made: a cosine run to 2600 steps, then a warm restart resumed to 4200 steps
# (exported as the base model), then fill-in-the-middle fine-tuning from those weights, 900 steps and a
# warm restart resumed to 1800: half of the training sequences have a gap of 1-8 bars moved after the
# rest, so the model learns to write bars that lead into what follows them (`--regenerate`).
_FIM = ("cadenza train symbolic --run runs/symbolic-fim --init-from runs/remi-folk-base --infill-rate 0.5 "
        "--lr 3e-4 --warmup-steps 30 --threads 1")
RECIPE_COMMANDS = ("cadenza train symbolic --prepare --corpus ../shared/corpus && "
                   "cadenza train symbolic --max-steps 2600 && "
                   "cadenza train symbolic --max-steps 4200 && "
                   "cadenza train symbolic --export runs/remi-folk-base --name remi-folk-base && "
                   f"{_FIM} --max-steps 900 && {_FIM} --max-steps 1800 && "
                   "cadenza train symbolic --run runs/symbolic-fim --export checkpoints/remi-folk-small")


def add_arguments(p) -> None:
    """The flags of `cadenza train symbolic`."""
    p.add_argument("--prepare", action="store_true", help="build the dataset (corpus -> tokens)")
    p.add_argument("--corpus", help="a folder with MANIFEST.tsv + midi/ (default: rebuild from music21, or ../shared/corpus)")
    p.add_argument("--data", default="data/symbolic", help="token cache folder")
    p.add_argument("--run", default="runs/symbolic", help="training run folder (resumes from it)")
    p.add_argument("--minutes", type=float, help="stop after this many minutes (run again to resume)")
    p.add_argument("--max-steps", type=int, default=2600, help="training steps")
    p.add_argument("--batch-rows", type=int, default=4, help="sequences of 1024 tokens per step")
    p.add_argument("--init-from", metavar="CHECKPOINT", help="start from this checkpoint folder's weights (fine-tune)")
    p.add_argument("--infill-rate", type=float, default=0.0, help="share of fill-in-the-middle sequences (0..1)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--warmup-steps", type=int, default=150, help="linear warm-up steps")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for training")
    p.add_argument("--export", metavar="DIR", help="write a checkpoint folder from the run")
    p.add_argument("--name", default="remi-folk-small", help="model name for --export")
    p.add_argument("--include-noncommercial", action="store_true", help="also train on Essen folk songs (non-commercial license)")


def run(args) -> int:
    data = Path(args.data)
    if args.prepare:
        from cadenza.generators.symbolic.dataset import prepare_dataset

        corpus = given_corpus(args.corpus) if args.corpus else Path("data/corpus")
        if not (corpus / "MANIFEST.tsv").exists():
            print(f"rebuilding the corpus from music21 into {corpus} ...", file=sys.stderr)
            rebuild_from_music21(corpus)
        summary = prepare_dataset(corpus, data, read_manifest(corpus), include_noncommercial=args.include_noncommercial)
        print(f"token cache in {data}: {summary['splits']}")
        return 0
    if args.export:
        from cadenza.training import require_run

        require_run(args.run, "symbolic")
        from cadenza.generators.symbolic.evaluate import test_loss
        from cadenza.generators.symbolic.export import export_checkpoint

        spec = export_checkpoint(args.run, data, args.export, args.name, metrics=test_loss(args.run, data),
                                 command=RECIPE_COMMANDS)
        print(f"wrote {spec.directory} (sha256 {spec.sha256[:12]}..., metrics {spec.metrics})")
        return 0
    from cadenza.generators.symbolic.train import TrainConfig, train

    train(TrainConfig(data_dir=str(data), run_dir=args.run, minutes=args.minutes, max_steps=args.max_steps,
                      batch_rows=args.batch_rows, init_from=args.init_from, infill_rate=args.infill_rate,
                      lr=args.lr, warmup_steps=args.warmup_steps, threads=args.threads))
    return 0
