"""The `cadenza` command: a thin layer that turns flags into Conditioning + Sampling and calls Studio."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cadenza import CadenzaError, Callbacks, Conditioning, MidiOutput, OutputError, Provenance, Sampling, Studio
from cadenza.fileio import check_output_path, shown
from cadenza.fileio.limits import DEFAULT_MAX_DURATION_S
from cadenza.outputs import transcribed_path

DESCRIPTION = """Cadenza: make music with AI models on your own computer.

  cadenza models                         what is installed
  cadenza generate MODEL -o tune.mid     write new music (MIDI, or WAV/FLAC by the file name)
  cadenza render song.mid -o song.wav    turn MIDI into audio (or a whole folder of MIDI files)
  cadenza transcribe a.wav -o a.mid      turn a recording into MIDI notes (or a whole folder)
  cadenza batch jobs.jsonl -o out/       make many pieces from a jobs file (here, or on a Ray cluster)
  cadenza remake tune.wav.json           make an output again from its sidecar, bit for bit
  cadenza train RECIPE                   rebuild a built-in model from scratch
  cadenza pull musicgen-small            download a big pretrained model (the only command that downloads)
  cadenza app                            open the studio in your browser
"""


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="write new music with a model",
                       description="Write new music. Every option you set is honoured exactly or refused with a reason: "
                                   "a model never silently ignores what you asked for. The output format follows the "
                                   "file name: .mid for MIDI, .wav/.flac to hear it (MIDI is rendered with FluidSynth).")
    p.add_argument("model", help="model name (see `cadenza models`)")
    p.add_argument("-o", "--output", required=True, help="output file: tune.mid, tune.wav or tune.flac; with --samples N "
                                                          "the files are tune-1.mid ... tune-N.mid")
    p.add_argument("--json", action="store_true", help="print what was written (paths, seeds, choices) as one JSON line")
    music = p.add_argument_group("what to make")
    music.add_argument("--text", help='a description, e.g. "a lively irish reel in D major, 16 bars"')
    music.add_argument("--negative-text", help="what to avoid (audio models)")
    music.add_argument("--style", help="style, e.g. irish, scottish, chorale, string-quartet, renaissance, folk-song")
    music.add_argument("--tempo", type=_finite_float, help="tempo in beats (quarter notes) per minute, 20-300")
    music.add_argument("--key", help='key, e.g. "D major", "F# minor"')
    music.add_argument("--time-signature", help="meter, e.g. 4/4, 3/4, 6/8")
    music.add_argument("--bars", type=int, help="number of bars to write (1-256)")
    music.add_argument("--duration", type=_finite_float, help="length in seconds (audio models)")
    music.add_argument("--instrument", action="append", default=[], help="instrument (repeat for several), e.g. violin, flute")
    music.add_argument("--form", help="form of the piece (symbolic): AABB, AABA, ABAC, 'A8 B8', \"A A' B B'\" "
                                      "(default: the style's usual form)")
    music.add_argument("--prompt", help="a MIDI or audio file to continue; a recording (hum, sing, whistle or play a "
                                        "tune) is heard as notes first for models that continue MIDI, and those "
                                        "notes are saved beside the output as NAME.prompt.mid")
    music.add_argument("--regenerate", type=_bar_range, metavar="FIRST-LAST",
                       help="with a MIDI --prompt (symbolic): write bars FIRST..LAST anew (e.g. 5-8), keep the rest")
    music.add_argument("--melody", help="a melody to perform (audio models): a MIDI file, played note for note at its "
                                        "tempo by the instrument the text names (our models), or audio (MusicGen-melody)")
    compose = music.add_mutually_exclusive_group()
    compose.add_argument("--no-compose", dest="compose", action="store_false", default=None,
                         help="audio models: do not compose a score first, even when key, tempo, meter, form or bars "
                              "are named (by default the composer writes the tune, the audio model performs it, and the "
                              "score is saved beside the audio as .mid)")
    compose.add_argument("--compose", dest="compose", action="store_true",
                         help="audio models: always compose a score first, even when no musical control is named")
    how = p.add_argument_group("how to sample")
    how.add_argument("--seed", type=int, help="same seed + same settings = same music (default: a new seed, printed)")
    how.add_argument("--temperature", type=_finite_float, default=1.0, help="randomness: lower is safer, higher is wilder (0 = always the likeliest)")
    how.add_argument("--top-k", type=int, default=0, help="only choose among the k likeliest tokens (0 = off)")
    how.add_argument("--top-p", type=_finite_float, default=1.0, help="only choose among tokens making up this probability (1 = off)")
    how.add_argument("--cfg", type=_finite_float, default=1.0, help="how strongly to follow text (audio models; 1 = off)")
    how.add_argument("--steps", type=int, help="denoising steps (diffusion models)")
    how.add_argument("--scheduler", help="denoising scheduler (diffusion models), e.g. dpm++, ddim, euler, heun")
    how.add_argument("--strength", type=_finite_float, help="how far to move from an audio --prompt (diffusion models) or from the sketch of "
                     "a --melody the model performs, 0-1 (1: the model's own performance)")
    how.add_argument("--samples", type=int, default=1, help="how many pieces to write")
    _add_max_duration(p, "a --prompt or --melody longer than this is refused before any work")
    _add_device(p)
    how.add_argument("--key-bias", type=_finite_float, default=None,
                     help="symbolic models: discourage notes outside the key (0 = off, 10 = strict; default: the model's)")


def _add_render(sub) -> None:
    p = sub.add_parser("render", help="turn MIDI into audio: one file or a whole folder",
                       description="Render MIDI to audio with a General MIDI SoundFont (FluidSynth). Give a folder to "
                                   "render every MIDI file in it (and its subfolders) into the same tree: a progress bar "
                                   "shows files/s, finished files are skipped when you run it again, broken files are "
                                   "listed in render_report.jsonl and never stop the batch.")
    p.add_argument("input", help="a .mid file or a folder of them")
    p.add_argument("-o", "--output", required=True, help="output file (.wav/.flac) or folder")
    p.add_argument("--json", action="store_true", help="print what was written (paths, seeds, choices) as one JSON line")
    p.add_argument("--synth", default="fluidsynth",
                   help="fluidsynth (default, General MIDI SoundFont) or ddsp:NAME, a learned instrument "
                        "(ddsp:violin, ddsp:flute, ddsp:trumpet, ddsp:clarinet); chords are split into voices")
    p.add_argument("--stems", metavar="DIR", help="ddsp: also write each voice as its own file into DIR")
    p.add_argument("--vibrato", type=_finite_float, metavar="CENTS", help="ddsp: vibrato depth (default 0: none)")
    p.add_argument("--attack", type=_finite_float, metavar="SEC", help="ddsp: note attack time (default 0.04)")
    p.add_argument("--release", type=_finite_float, metavar="SEC", help="ddsp: note release time (default 0.15)")
    p.add_argument("--seed", type=int, help="ddsp: seed of the noise part of the sound (default 0)")
    p.add_argument("--soundfont", help="an .sf2/.sf3 SoundFont (default: FluidR3_GM if installed)")
    p.add_argument("--format", default="wav", choices=["wav", "flac", "ogg"], help="audio format for folders")
    p.add_argument("--workers", type=_workers, default=2, help="files rendered in parallel (folders)")
    p.add_argument("--sample-rate", type=int, default=44100, help="Hz")
    p.add_argument("--gain", type=_finite_float, default=0.5, help="synth gain before loudness normalisation")
    p.add_argument("--loudness", type=_finite_float, default=-14.0, help="target loudness in LUFS")
    p.add_argument("--no-normalize", action="store_true", help="keep the synth's own level")
    p.add_argument("--no-reverb", action="store_true", help="dry sound")
    p.add_argument("--chorus", action="store_true", help="add chorus")
    p.add_argument("--mono", action="store_true", help="one channel")
    p.add_argument("--tail", type=_finite_float, default=1.5, help="seconds kept after the last note (releases, reverb)")
    p.add_argument("--force", action="store_true", help="re-render files that are already done")
    _add_max_duration(p, "a MIDI file longer than this is refused before rendering")
    _add_ray(p)
    _add_device(p)


def _add_transcribe(sub) -> None:
    p = sub.add_parser("transcribe", help="turn a recording into MIDI notes: one file or a whole folder",
                       description="Hear the notes in a recording and write them as MIDI (with a .mid.json sidecar "
                                   "saying how). By default any number of notes at once (Basic Pitch, for piano, "
                                   "guitar, ensembles); --mono for one voice or instrument (singing, humming, "
                                   "whistling, a flute): steadier notes from a pitch tracker. --quantize snaps the "
                                   "notes to a grid in the tempo and meter heard, ready to edit or to continue with "
                                   "`cadenza generate MODEL --prompt take.mid`. Give a folder to transcribe every "
                                   "recording in it into the same tree of .mid files: finished files are skipped "
                                   "when you run it again, broken ones are listed in transcribe_report.jsonl.")
    p.add_argument("input", help="a recording (.wav .flac .ogg .mp3 .aiff .m4a) or a folder of them")
    p.add_argument("-o", "--output", required=True, help="output .mid file, or folder for a folder")
    p.add_argument("--json", action="store_true", help="print what was written (path, notes, tempo, key) as one JSON line")
    p.add_argument("--mono", action="store_true", help="one voice or instrument at a time (voice, whistle, solo line)")
    p.add_argument("--onset-threshold", type=_finite_float, default=0.5,
                   help="0-1: how sure the model must be that a note starts (lower finds more notes; polyphonic)")
    p.add_argument("--frame-threshold", type=_finite_float, default=0.3,
                   help="0-1: how sure it must be that a note still sounds (lower: longer notes; polyphonic)")
    p.add_argument("--voicing-threshold", type=_finite_float, default=0.5,
                   help="0-1: how sure the pitch tracker must be that a moment is pitched (--mono)")
    p.add_argument("--min-note-ms", type=_finite_float, metavar="MS",
                   help="drop notes shorter than this (default 128 ms, 80 ms with --mono)")
    p.add_argument("--pitch-range", type=_pitch_range, metavar="LOW-HIGH", default=(21, 108),
                   help="keep notes in this range: MIDI numbers or names, e.g. 40-84 or E2-C6 (default A0-C8)")
    p.add_argument("--pitch-bends", action="store_true", help="keep each note's bends and slides as MIDI pitch bends")
    p.add_argument("--quantize", action="store_true", help="snap notes to a grid in the tempo and meter heard")
    p.add_argument("--grid", default="1/16", choices=["1/4", "1/8", "1/16", "1/8t", "1/16t"],
                   help="the grid --quantize snaps to")
    p.add_argument("--tempo", type=_finite_float, help="the tempo in BPM, if you know it (default: heard)")
    p.add_argument("--time-signature", help="the meter, e.g. 3/4 or 6/8 (default: heard, 4/4 or 3/4)")
    p.add_argument("--workers", type=_workers, default=1, help="files transcribed in parallel (folders)")
    p.add_argument("--force", action="store_true", help="transcribe files that are already done again")
    _add_max_duration(p, "a recording longer than this is refused before it is read")
    _add_ray(p)


def _pitch_range(text: str) -> tuple[int, int]:
    """``"40-84"`` or ``"E2-C6"`` -> (40, 84)."""
    import re

    parts = re.fullmatch(r"\s*([A-Ga-g][#b]?-?\d+|\d+)\s*-\s*([A-Ga-g][#b]?-?\d+|\d+)\s*", text)
    if not parts:
        raise argparse.ArgumentTypeError(f"{text!r}: write LOW-HIGH as MIDI numbers (40-84) or note names (E2-C6)")
    return _pitch(parts.group(1)), _pitch(parts.group(2))


def _pitch(name: str) -> int:
    if name.isdigit():
        return int(name)
    from cadenza.music.theory import parse_key

    octave = int(name[2:] if len(name) > 1 and name[1] in "#b" else name[1:])
    return parse_key(name[: len(name) - len(str(octave))]).tonic + 12 * (octave + 1)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="rebuild a built-in model from scratch",
                       description="Training recipes: each rebuilds one built-in model (seeded, resumable: run it "
                                   "again to continue). `cadenza train RECIPE --help` for its steps.")
    recipes = p.add_subparsers(dest="recipe", required=True, metavar="RECIPE")
    for name, recipe in Studio.train_recipes().items():
        try:
            description = recipe.description  # imports the recipe's module (they keep heavy imports inside run)
        except ModuleNotFoundError as exc:
            if exc.name is not None and recipe.module.startswith(exc.name):
                continue  # that family is not part of this checkout
            raise
        parser = recipes.add_parser(name, help=recipe.help, description=description,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        recipe.add_arguments(parser)
        parser.set_defaults(recipe_name=name)


def _add_max_duration(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--max-duration", type=_duration, default=DEFAULT_MAX_DURATION_S, metavar="TIME",
                   help=f"the longest input taken, e.g. 90s, 30m, 7h, 1:30:00 or 'none' (default 1h): {what}. "
                        "Long pieces are rendered in blocks, so memory stays the same whatever the length")


def _duration(text: str) -> float | None:
    """An argparse type: ``"7h"`` -> 25200.0 (see ``fileio.limits.parse_duration``)."""
    from cadenza.fileio.limits import parse_duration

    try:
        return parse_duration(text)
    except CadenzaError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _finite_float(text: str) -> float:
    """An argparse type: a finite number ('nan', 'inf' and '1e999' are refused here, at the edge)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _workers(text: str) -> int:
    """An argparse type: a whole number of worker processes, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"{value} workers: give 1 to 256")
    return value
def _add_ray(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run the files or jobs on Ray (pip install 'cadenza[distributed]'): --ray alone starts Ray on "
                        "this computer; --ray HOST:PORT joins a running cluster (`ray start --head` on one machine, "
                        "`ray start --address HOST:PORT` on the others). Each Ray worker loads the model once and "
                        "keeps it; a worker that dies costs its job one retry, not the run")


def _add_batch(sub) -> None:
    p = sub.add_parser("batch", help="make many pieces from a jobs file (on this computer or a Ray cluster)",
                       description=BATCH_DESCRIPTION)
    p.add_argument("jobs", help="the jobs file: one JSON request per line (.jsonl)")
    p.add_argument("-o", "--output", required=True, help="the folder the files are written to (with report.jsonl)")
    p.add_argument("--workers", type=_workers, default=2, help="jobs run in parallel on this computer (without --ray)")
    p.add_argument("--force", action="store_true", help="make jobs that are already done again")
    p.add_argument("--json", action="store_true", help="print the counts and the report's path as one JSON line")
    _add_ray(p)
    _add_device(p)


BATCH_DESCRIPTION = """Make every request of a jobs file: one JSON object per line, in the shape of the sidecar
written beside every output (so a sidecar is a job too), plus "output", the file to write under -o:

  {"model": "remi-folk-small", "conditioning": {"key": "D major", "bars": 16}, "sampling": {"seed": 1}, "output": "reel.mid"}
  {"model": "remi-folk-small", "conditioning": {"style": "irish"}, "output": "jig.wav"}      (rendered with FluidSynth)
  {"model": "ddsp-violin", "conditioning": {"source_audio": "hum.wav"}, "transfer_options": {"pitch_shift": 0}, "output": "v.wav"}
  {"render": "song.mid", "synth": "fluidsynth", "render_options": {"reverb": false}, "output": "song.flac"}
  {"transcribe": "take.wav", "transcribe_options": {"mode": "mono"}, "output": "take.mid"}

Every line is checked before anything runs: a bad one is reported with its line number and the others
run. A request without a seed gets one made from the line itself (printed in report.jsonl and kept in the
sidecar): the same file makes the same music every time. Input files are found relative to the jobs file.
Files are written whole or not at all; run the command again and jobs already done are skipped.
report.jsonl in the output folder lists every job (ok, skipped or error, and why); progress (jobs/s, time
left) is shown as it goes. The exit status is 0 only if nothing failed."""


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, metavar="DEVICE",
                   help="where models run: cpu (default), cuda, cuda:N or mps. On CUDA the language models run in "
                        "bf16 with a compiled, CUDA-graphed step (the first call compiles, later calls are fast)")


# API field names as the flags that set them, so an error speaks the command line's language.
FLAG_OF_FIELD = {"num_samples": "--samples", "duration_s": "--duration", "tempo_bpm": "--tempo",
                 "cfg_scale": "--cfg", "time_signature": "--time-signature", "top_k": "--top-k", "top_p": "--top-p",
                 "key_bias": "--key-bias", "negative_text": "--negative-text",
                 "prompt_midi": "--prompt (MIDI)", "prompt_audio": "--prompt (audio)", "melody_midi": "--melody (MIDI)",
                 "melody_audio": "--melody (audio)", "source_audio": "the input recording"}


def in_flag_terms(message: str) -> str:
    """``message`` with the API field names that have a flag written as that flag."""
    import re

    return re.sub(r"\b(" + "|".join(FLAG_OF_FIELD) + r")\b", lambda m: FLAG_OF_FIELD[m.group(1)], message)


def quiet_dependencies() -> None:
    """Hide what the libraries print on every run and a user cannot act on: deprecation notices (torch's
    weight_norm, ...) and Hugging Face's weight-loading progress bars. Cadenza's own messages stay."""
    import os
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cadenza")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "unknown (not installed)"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; every option's default shown unless it is unset or the help names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or "default" in text or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS or isinstance(action.default, list) and not action.default):
            return text
        return f"{text} (default: %(default)s)"


def _tidy_help(parser: argparse.ArgumentParser) -> None:
    """Every (sub)command's help: defaults shown, module-docstring ``literals`` as plain `literals`."""
    parser.formatter_class = HelpFormatter
    if parser.description:
        parser.description = parser.description.replace("``", "`")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _tidy_help(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cadenza", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"cadenza {_version()}")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="the CPU threads models run on (default: $CADENZA_THREADS, else by model size: one for "
                             "small models such as the built-in ones, all cores for big ones; on a busy machine "
                             "fewer is faster)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the libraries' own warnings and progress bars (hidden by default)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("models", help="list installed models")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_generate(sub)
    _add_render(sub)
    _add_transcribe(sub)
    _add_batch(sub)
    p = sub.add_parser("transfer", help="turn a recording (voice, whistle, ...) into an instrument (DDSP models)")
    p.add_argument("input", help="a monophonic recording (.wav/.flac)")
    p.add_argument("--instrument", required=True, help="a DDSP instrument: violin, flute, trumpet, clarinet (or a model name)")
    p.add_argument("-o", "--output", required=True, help="output .wav/.flac")
    p.add_argument("--json", action="store_true", help="print what was written (paths, seeds, choices) as one JSON line")
    p.add_argument("--pitch-shift", type=_finite_float, default=0.0, metavar="SEMITONES",
                   help="transpose by this many semitones (after the automatic octave shift)")
    p.add_argument("--loudness-shift", type=_finite_float, default=0.0, metavar="DB", help="louder (+) or softer (-)")
    p.add_argument("--quiet", type=_finite_float, default=20.0, metavar="DB",
                   help="how much softer unpitched parts (breaths, consonants, noise) are played (default 20)")
    p.add_argument("--autotune", metavar="KEY", help="pull the pitch onto the notes of a key, e.g. 'D major'")
    p.add_argument("--autotune-amount", type=_finite_float, default=1.0, help="0 (off) .. 1 (fully on the notes)")
    p.add_argument("--no-auto-adjust", action="store_true",
                   help="keep the recording's octave and loudness (default: moved to the instrument's register)")
    p.add_argument("--seed", type=int, help="seed of the noise part of the sound (default: random, recorded)")
    _add_max_duration(p, "a recording longer than this is refused before it is read")
    _add_device(p)
    p = sub.add_parser("remake", help="make an output again from its sidecar, bit for bit",
                       description="Make an output again from the sidecar written beside it (tune.wav.json): the same "
                                   "model (checked by sha256), settings, seed, sample and CPU thread count, the same "
                                   "prompt or melody files (refused if they changed) and the same rendering. With -o "
                                   "it writes the new file there; without, it writes the original back if it is "
                                   "missing, or checks that the original comes out the same (exit status 1 if not).")
    p.add_argument("sidecar", help="the .json beside an output (or the output itself)")
    p.add_argument("-o", "--output", help="write the remade file here (with its own sidecar)")
    p.add_argument("--json", action="store_true", help="print what was done as one JSON line")
    _add_device(p)
    _add_train(sub)
    p = sub.add_parser("pull", help="download a pretrained model (the only command that downloads)",
                       description="Download a known pretrained model (MusicGen, plus the T5 text encoder it needs; or a "
                                   "diffusion pipeline: AudioLDM2, Stable Audio Open) from the Hugging Face hub at a "
                                   "pinned revision into the Hugging Face cache ($HF_HOME, shared with other tools), and "
                                   "write ~/.cache/cadenza/NAME/: a manifest pinning every file by sha256 and links to "
                                   "the cached files. Without network it stops at once. Nothing else in Cadenza touches "
                                   "the network. You can also point `cadenza generate` at a MusicGen folder you already "
                                   "have (state_dict.bin + compression_state_dict.bin).")
    p.add_argument("name", help="one of: " + ", ".join(Studio.pullable()))
    p.add_argument("--dir", help="write the model folder (manifest and links) as DIR/NAME instead of ~/.cache/cadenza/NAME")
    p = sub.add_parser("app", help="open the web studio",
                       description="Serve the web studio and open http://HOST:PORT in your browser: pick a model, set "
                                   "what you want, generate, listen, continue it, download MIDI and audio. It listens "
                                   "on this computer only unless you choose another --host.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only; "
                                                        "0.0.0.0 lets other machines on your network in)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--auth-file", metavar="PATH",
                   help="logins, one user:password a line (chmod 600); needed off this computer: any --host "
                        "but 127.0.0.1/localhost, or --share on (or set CADENZA_APP_AUTH=user:password)")
    p.add_argument("--no-auth", action="store_true",
                   help="serve off this computer without a login: anyone who can reach it may use it")
    p.add_argument("--share", choices=["off", "on"], default="off",
                   help="on: also make a temporary public link through Gradio's share servers (default off)")
    p.add_argument("--max-upload-mb", type=float, default=50, help="largest upload accepted, in MB (default 50)")
    _add_device(p)
    _tidy_help(parser)
    return parser


def _numbered(path: Path, index: int, total: int) -> Path:
    return path if total == 1 else path.with_name(f"{path.stem}-{index + 1}{path.suffix}")


def cmd_models(args, studio) -> int:
    models = studio.models()
    if args.json:
        print(json.dumps([m.to_dict() for m in models], indent=1))
        return 0
    if not models:
        print("no models installed (checkpoints/ is empty and no user model folders were found)")
    for m in models:
        print(f"{m.name:28s} {m.family:10s} -> {m.output:5s}  {', '.join(m.capabilities)}")
    return 0


def cmd_generate(args, studio) -> int:
    conditioning = Conditioning(
        text=args.text, negative_text=args.negative_text, style=args.style, tempo_bpm=args.tempo, key=args.key,
        time_signature=args.time_signature, bars=args.bars, duration_s=args.duration, instruments=tuple(args.instrument),
        prompt=args.prompt, melody=args.melody, form=args.form, regenerate=args.regenerate, compose=args.compose)
    sampling = Sampling(seed=args.seed, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                        cfg_scale=args.cfg, steps=args.steps, scheduler=args.scheduler, strength=args.strength,
                        num_samples=args.samples, key_bias=args.key_bias)
    for index in range(args.samples if isinstance(args.samples, int) and 0 < args.samples <= 64 else 1):
        check_output_path(_numbered(Path(args.output), index, args.samples))  # before the model runs, not after
    interactive = sys.stderr.isatty()  # a progress line only where \r redraws it (not in logs or pipes)
    clock = args.clock
    if clock.enabled:  # load first, so loading and generating are timed apart
        import torch  # noqa: F401

        clock.lap("torch_import")
        studio.load(args.model)
        clock.lap("load")
    outputs = studio.generate(args.model, conditioning, sampling,
                              Callbacks(progress=_progress_printer() if interactive else None))
    clock.lap("generate")
    if interactive:
        print(file=sys.stderr)
    written = []
    for index, output in enumerate(outputs):
        target = _numbered(Path(args.output), index, len(outputs))
        score = None
        if target.suffix.lower() in (".wav", ".flac", ".ogg") and isinstance(output, MidiOutput):
            score = output.save(target.with_suffix(".mid"))  # the score is kept beside its rendering: x.wav + x.mid
            path = studio.render_to(output, target)  # played with FluidSynth, written in blocks
            made = Provenance.from_json(Path(f"{path}.json").read_text(encoding="utf-8"))
        else:
            path = output.save(target)
            made = output.provenance
        notes = made.notes
        if getattr(output, "score", None) is not None:  # composed, then performed: its score is beside it
            score = path.with_suffix(".mid")
        heard = {name: str(transcribed_path(score or path, name)) for name in notes.get("heard", {})}
        written.append({"path": str(path), "seed": made.seed, "call_seed": made.sampling.get("seed"),
                        "sample_index": made.sample_index, **({"midi": str(score)} if score else {}),
                        **({"heard": heard} if heard else {}), "notes": notes})
        if not args.json:
            shown = ("style", "key", "time_signature", "bars", "tempo_bpm", "form", "instruments", "regenerated_bars")
            described = ", ".join(f"{k} {v}" for k, v in notes.items() if k in shown and v not in ([], None))
            # one of several: the seed makes the whole call, this file is one sample of it (`cadenza remake` makes it alone)
            seed = (f"seed {made.sampling.get('seed')}, sample {made.sample_index + 1} of {len(outputs)}"
                    if len(outputs) > 1 else f"seed {made.seed}")
            print(f"wrote {path} ({seed}{'; ' + described if described else ''})")
            if "composed" in notes:
                print(f"wrote {score} (the score it performs, written by {notes['composed']['composer']} with "
                      f"the {', '.join(notes['composed']['controls'])} asked for)")
            if "sketch" in notes:
                print(f"performed from the score's sketch on {notes['sketch']['instrument']}, strength "
                      f"{notes['sketch']['strength']:g} (--strength 1: the model's own performance)")
            for name, heard_path in heard.items():
                print(f"wrote {heard_path} (the notes heard in the {name} {notes['heard'][name]['from']})")
    clock.lap("write")
    if args.json:
        print(json.dumps({"written": written}))
    return 0


def _bar_range(text: str) -> tuple[int, int]:
    """``"5-8"`` -> (5, 8); ``"5"`` -> (5, 5)."""
    first, _, last = text.partition("-")
    try:
        span = (int(first), int(last or first))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write bar numbers as FIRST-LAST, e.g. 5-8") from None
    return span


def _progress_printer():
    def show(done: int, total: int) -> None:
        if done % 16 == 0 or done == total:
            print(f"\rgenerating... {done} steps", end="", file=sys.stderr, flush=True)
    return show


def cmd_render(args, studio) -> int:
    """`cadenza render IN.mid|DIR`: one file through Studio.render, a folder through Studio.render_batch."""
    from cadenza import UnsupportedConditioning

    ddsp = args.synth.startswith("ddsp:")
    shared = dict(sample_rate=args.sample_rate, normalize_lufs=None if args.no_normalize else args.loudness,
                  tail_s=args.tail)
    if ddsp:
        if args.soundfont or args.chorus or args.gain != 0.5:
            raise UnsupportedConditioning(f"--soundfont, --chorus and --gain are for --synth fluidsynth; {args.synth} "
                                          "plays its learned timbre, dry and mono (set the level with --loudness)")
        ddsp_flags = dict(vibrato_cents=args.vibrato, attack_s=args.attack, release_s=args.release)
        options = shared | {name: value for name, value in ddsp_flags.items() if value is not None}
    else:
        if args.stems or any(v is not None for v in (args.seed, args.vibrato, args.attack, args.release)):
            raise UnsupportedConditioning("--stems, --vibrato, --attack, --release and --seed are for --synth ddsp:NAME")
        options = shared | dict(soundfont=args.soundfont, gain=args.gain, reverb=not args.no_reverb,
                                chorus=args.chorus, stereo=not args.mono)
    source = Path(args.input)
    if source.is_dir():
        if Path(args.output).suffix.lower() in (".wav", ".flac", ".ogg"):
            raise OutputError(f"{shown(source)} is a folder: its files are rendered into a folder, give one as -o "
                              f"(not the file name {shown(args.output)})")
        summary = studio.render_batch(source, args.output, synth=args.synth, fmt=args.format, workers=args.workers,
                                      force=args.force, runner=studio.runner(args.workers, args.ray), **options)
        return _report_batch(summary, args.json, "rendered", f" ({summary.files_per_s:.1f} files/s)")
    path = studio.render_to(source, args.output, synth=args.synth, seed=args.seed, stems_dir=args.stems, **options)
    made = Provenance.from_json(Path(f"{path}.json").read_text(encoding="utf-8"))
    stems = [str(Path(args.stems) / name) for name in made.notes.get("stem_files", [])] if args.stems else []
    if args.json:
        print(json.dumps({"written": [{"path": str(path), "seed": made.seed, "stems": stems, "notes": made.notes}]}))
        return 0
    count = len(made.notes.get("voices", []))
    voices = f" ({count} voice{'s' if count != 1 else ''})" if ddsp else ""
    print(f"wrote {path}{voices}")
    for stem in stems:
        print(f"wrote {stem}")
    return 0


def cmd_transfer(args, studio) -> int:
    check_output_path(args.output)  # before the work, not after
    output = studio.transfer(args.input, args.instrument, sampling=Sampling(seed=args.seed),
                             pitch_shift=args.pitch_shift, loudness_shift=args.loudness_shift, quiet_db=args.quiet,
                             autotune_key=args.autotune, autotune_amount=args.autotune_amount,
                             auto_adjust=not args.no_auto_adjust)
    notes = output.provenance.notes
    path = output.save(args.output)
    if args.json:
        print(json.dumps({"written": [{"path": str(path), "seed": output.provenance.seed, "notes": notes}]}))
        return 0
    print(f"wrote {path} (octave shift {notes['octave_shift']:+d}, "
          f"{notes['voiced_fraction']:.0%} of frames pitched, seed {output.provenance.seed})")
    return 0


def cmd_transcribe(args, studio) -> int:
    """`cadenza transcribe IN|DIR -o OUT`: one file through Studio.transcribe, a folder through transcribe_batch."""
    options = dict(mode="mono" if args.mono else "poly", onset_threshold=args.onset_threshold,
                   frame_threshold=args.frame_threshold, voicing_threshold=args.voicing_threshold,
                   min_note_ms=args.min_note_ms, pitch_range=args.pitch_range, pitch_bends=args.pitch_bends,
                   quantize=args.quantize, grid=args.grid, tempo_bpm=args.tempo, time_signature=args.time_signature)
    source = Path(args.input)
    if source.is_dir():
        summary = studio.transcribe_batch(source, args.output, workers=args.workers, force=args.force,
                                          runner=studio.runner(args.workers, args.ray), **options)
        return _report_batch(summary, args.json, "transcribed")
    check_output_path(args.output)  # before the work, not after
    output = studio.transcribe(source, **options)
    path = output.save(args.output)
    notes = output.provenance.notes
    if args.json:
        print(json.dumps({"written": [{"path": str(path), "notes": notes}]}))
        return 0
    shown = ", ".join(f"{label} {notes[k]}" for k, label in (("tempo_bpm", "tempo"), ("time_signature", "meter"),
                                                             ("key", "key")) if notes.get(k) is not None)
    print(f"wrote {path} ({notes['notes']} notes; {shown})")
    if notes.get("message"):
        print(f"note: {notes['message']}", file=sys.stderr)
    return 0


def _report_batch(summary, as_json: bool, done: str, rate: str = "") -> int:
    """Print a batch's summary (one JSON line, or a sentence: ``done`` says what became of each file, ``rate``
    follows its time); the exit status: 0 when nothing failed, else 1."""
    if as_json:
        print(json.dumps({"ok": summary.ok, "skipped": summary.skipped, "failed": summary.failed,
                          "total": summary.total, "seconds": round(summary.seconds, 3),
                          "report": str(summary.report_path)}))
    else:
        print(f"{summary.ok} {done}, {summary.skipped} already done, {summary.failed} failed of {summary.total} "
              f"in {summary.seconds:.1f} s{rate}; report: {summary.report_path}")
    return 0 if summary.failed == 0 else 1


def cmd_batch(args, studio) -> int:
    """`cadenza batch JOBS.jsonl -o DIR [--ray [ADDRESS]]`: Studio.batch on the runner the flags name."""
    summary = studio.batch(args.jobs, args.output, runner=studio.runner(args.workers, args.ray), force=args.force)
    return _report_batch(summary, args.json, "made", f" ({summary.files_per_s:.2f} jobs/s)")


def cmd_remake(args, studio) -> int:
    """`cadenza remake OUT.json [-o NEW]`: NEW, or the original where it is missing, or (both there) a
    check that the original comes out the same."""
    from cadenza.app.remake_check import remake_command

    return remake_command(studio, args.sidecar, args.output, as_json=args.json)


def cmd_train(args, studio) -> int:
    return studio.train_recipes()[args.recipe_name].run(args)


def cmd_pull(args, studio) -> int:
    spec = studio.pull(args.name, root=args.dir, log=lambda line: print(line, file=sys.stderr))
    print(f"{spec.name} is ready in {spec.directory} (try: cadenza generate {spec.name} --text '...' -o out.wav)")
    return 0


def cmd_app(args, studio) -> int:
    try:
        import gradio  # noqa: F401
    except ModuleNotFoundError as exc:
        from cadenza import MissingDependency

        raise MissingDependency("the web studio needs Gradio: pip install 'cadenza[app]'") from exc
    import math

    from cadenza.app.web import launch
    from cadenza.app.web.auth import is_loopback, server_logins
    from cadenza.app.web.context import AppSettings

    logins = server_logins(args.host, args.share == "on", args.auth_file, args.no_auth)
    upload_mb = args.max_upload_mb if math.isfinite(args.max_upload_mb) else 0  # 0: refused by AppSettings
    settings = AppSettings(max_upload_bytes=int(upload_mb * 2**20), logins=tuple(logins))
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"Cadenza studio: open http://{host}:{args.port} in your browser (Ctrl+C stops it)", file=sys.stderr)
    if args.no_auth and (args.share == "on" or not is_loopback(args.host)):
        print("Cadenza studio: no login (--no-auth): anyone who can reach it may use it", file=sys.stderr)
    launch(studio, host=args.host, port=args.port, share=args.share == "on", settings=settings)
    return 0


def _printable_names() -> None:
    """File names that are not valid UTF-8 (Python holds their bytes as lone surrogates) are printed as the
    bytes they are, as ls and cat do, instead of stopping the command with a UnicodeEncodeError after
    its work is done."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and (getattr(stream, "encoding", "") or "").lower().replace("-", "") == "utf8":
            reconfigure(errors="surrogateescape")


COMMANDS = {"models": cmd_models, "generate": cmd_generate, "render": cmd_render, "transcribe": cmd_transcribe,
            "batch": cmd_batch, "transfer": cmd_transfer, "remake": cmd_remake, "train": cmd_train, "pull": cmd_pull, "app": cmd_app}


# One-shot commands: once they are done the process may leave at once (see main).
QUICK_EXIT = frozenset({"models", "generate", "render", "transcribe", "batch", "transfer", "remake", "pull"})


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    Called as the program itself (``argv`` None: the ``cadenza`` script, ``python -m cadenza.app.cli``), a
    one-shot command leaves through ``os._exit`` once its files are written and its output flushed:
    Python's own teardown of torch and the model libraries took 0.6-1.2 s of every run, and nothing is
    left to clean up (every file is written and renamed into place before)."""
    from cadenza.app.timings import PhaseClock

    clock = PhaseClock()
    args = build_parser().parse_args(argv)
    args.clock = clock
    if not args.verbose:
        quiet_dependencies()
    clock.lap("cli")
    _printable_names()
    try:
        studio = Studio(device=getattr(args, "device", None), threads=args.threads,
                        max_duration_s=getattr(args, "max_duration", DEFAULT_MAX_DURATION_S))
        status = COMMANDS[args.command](args, studio)
    except CadenzaError as exc:
        print(f"cadenza: error: {in_flag_terms(str(exc))}", file=sys.stderr)
        status = 2
    clock.report()
    if argv is None and args.command in QUICK_EXIT:
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
