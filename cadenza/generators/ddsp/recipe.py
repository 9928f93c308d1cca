"""`cadenza train ddsp`: build a DDSP instrument (the defaults ddsp-violin, -flute, -trumpet, -clarinet).

From corpus melodies rendered through FluidSynth (ground-truth f0 from the notes):
  cadenza train ddsp --prepare --instrument violin --corpus ../shared/corpus
  cadenza train ddsp --instrument violin --minutes 15
  cadenza train ddsp --instrument violin --export checkpoints/ddsp-violin

From your own recordings of one instrument (monophonic; f0 from the pitch tracker):
  cadenza train ddsp --audio my_cello_recordings/ --name cello --minutes 30
  cadenza train ddsp --name cello --export checkpoints/ddsp-cello

From a Magenta DDSP solo-instrument model (e.g. a Tone Transfer checkpoint; needs TensorFlow):
  cadenza train ddsp --from-magenta solo_violin_ckpt/ --name magenta-violin --export ~/.cache/cadenza/ddsp-magenta-violin

Training is seeded and resumable: run the same command again to continue. Losses: runs/ddsp-NAME/log.jsonl.
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_arguments(p) -> None:
    """The flags of `cadenza train ddsp`."""
    p.add_argument("--instrument", help="a preset to render from the corpus: violin, flute, trumpet, clarinet")
    p.add_argument("--name", help="instrument name (default: --instrument); the model is called ddsp-NAME")
    p.add_argument("--prepare", action="store_true", help="only build the dataset (render corpus melodies or read --audio)")
    p.add_argument("--corpus", help="corpus folder with MANIFEST.tsv + midi/ (for --prepare; default ../shared/corpus "
                                   "if present, else the folk collections rebuilt from music21 into data/corpus-folk)")
    p.add_argument("--audio", help="a folder of recordings of one instrument (prepared, then trained on)")
    p.add_argument("--program", type=int, help="General MIDI program to render (default: the preset's)")
    p.add_argument("--data-minutes", type=float, default=12.0, help="minutes of audio to render for --prepare")
    p.add_argument("--data", help="dataset folder (default data/ddsp/NAME)")
    p.add_argument("--run", help="training run folder (default runs/ddsp-NAME; resumes from it)")
    p.add_argument("--minutes", type=float, help="stop training after this many minutes (run again to resume)")
    p.add_argument("--max-steps", type=int, default=2000, help="training steps (learning rate decays over them)")
    p.add_argument("--batch", type=int, default=8, help="crops of 2 s per step")
    p.add_argument("--threads", type=int, default=1, help="CPU threads")
    p.add_argument("--reverb", type=float, default=0.0, help="seconds of learned reverb (0: dry, as the corpus renders are)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export", metavar="DIR", help="write a checkpoint folder from the run")
    p.add_argument("--from-magenta", metavar="DIR",
                   help="convert a Magenta DDSP solo-instrument model (operative_config-*.gin + ckpt-*) into the "
                        "--export folder instead of training (needs the ddsp-magenta extra: TensorFlow)")


def _command(name: str, instrument: str | None, run_dir: Path) -> str:
    """The commands that made the run in ``run_dir`` (its training settings are read from config.json)."""
    import json

    train = json.loads((run_dir / "config.json").read_text())["train"] if (run_dir / "config.json").exists() else {}
    budget = f" --max-steps {train.get('max_steps', 2000)}"
    log = run_dir / "log.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    if train.get("minutes") and records:  # stopped by time (maybe over several resumed runs): the total
        budget += f" --minutes {round(records[-1]['seconds'] / 60):g}"
    if instrument:
        return (f"cadenza train ddsp --prepare --instrument {instrument} --corpus ../shared/corpus && "
                f"cadenza train ddsp --instrument {instrument}{budget} && "
                f"cadenza train ddsp --instrument {instrument} --export checkpoints/ddsp-{name}")
    return (f"cadenza train ddsp --audio DIR --name {name}{budget} && "
            f"cadenza train ddsp --name {name} --export checkpoints/ddsp-{name}")


def _corpus(given: str | None) -> Path:
    """The corpus to render from: ``given``, else ../shared/corpus, else the folk collections rebuilt from
    the installed music21 package into data/corpus-folk (once)."""
    if given:
        from cadenza.data.corpus import given_corpus

        return given_corpus(given)
    for candidate in (Path("../shared/corpus"), Path("data/corpus-folk")):
        if (candidate / "MANIFEST.tsv").exists():
            return candidate
    from cadenza.data.corpus import rebuild_from_music21
    from cadenza.generators.ddsp.data import FOLK_COLLECTIONS

    out = Path("data/corpus-folk")
    print(f"rebuilding {', '.join(FOLK_COLLECTIONS)} from music21 into {out} ...", file=sys.stderr)
    rebuild_from_music21(out, collections=list(FOLK_COLLECTIONS))
    return out


def run(args) -> int:
    from cadenza.errors import InvalidConditioning

    name = args.name or args.instrument
    if not name:
        raise InvalidConditioning("give --instrument (a preset: violin, flute, trumpet, clarinet) or --name")
    data = Path(args.data or f"data/ddsp/{name}")
    run_dir = Path(args.run or f"runs/ddsp-{name}")
    if args.from_magenta:
        from cadenza.generators.ddsp.magenta import convert_checkpoint

        if not args.export:
            raise InvalidConditioning("--from-magenta writes the converted model to --export DIR")
        spec = convert_checkpoint(args.from_magenta, args.export, f"ddsp-{name}")
        print(f"wrote {spec.directory} (sha256 {spec.sha256[:12]}...)")
        return 0
    if args.export:
        from cadenza.generators.ddsp.export import export_run
        from cadenza.training import require_run

        require_run(run_dir, "ddsp")

        spec = export_run(run_dir, data, args.export, f"ddsp-{name}", _command(name, args.instrument, run_dir))
        print(f"wrote {spec.directory} (sha256 {spec.sha256[:12]}..., metrics {spec.metrics})")
        return 0
    if args.prepare or (args.audio and not (data / "dataset.json").exists()):
        from cadenza.generators.ddsp import data as ddsp_data

        if args.audio:
            info = ddsp_data.prepare_folder(Path(args.audio), data, name)
        else:
            if not args.instrument:
                raise InvalidConditioning("--prepare renders corpus melodies for --instrument (or give --audio DIR)")
            info = ddsp_data.prepare_instrument(args.instrument, _corpus(args.corpus), data, minutes=args.data_minutes,
                                                seed=args.seed, program=args.program)
        print(f"dataset in {data}: {len(info['pieces'])} pieces, {info['seconds'] / 60:.1f} min; stats {info['stats']}",
              file=sys.stderr)
        if args.prepare:
            return 0
    if not (data / "dataset.json").exists():
        raise InvalidConditioning(f"no dataset in {data}: run with --prepare (corpus) or --audio DIR first")
    from cadenza.generators.ddsp.model import DecoderConfig
    from cadenza.generators.ddsp.train import TrainConfig, train

    train(TrainConfig(data_dir=str(data), run_dir=str(run_dir), model=DecoderConfig(reverb_s=args.reverb),
                      batch=args.batch, max_steps=args.max_steps, minutes=args.minutes, seed=args.seed,
                      threads=args.threads))
    return 0
