"""One generated output -> the files the page shows: a playable WAV, downloads, a picture, provenance."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cadenza import AudioOutput, MidiOutput, Provenance, Studio

_SUMMARY_NOTES = (("style", "{}"), ("key", "{}"), ("time_signature", "{}"), ("bars_written", "{} bars"),
                  ("tempo_bpm", "{:g} BPM"))


@dataclass(frozen=True)
class ResultFiles:
    """Files for one output, all inside one job folder.

    ``source``: the output itself (.mid for MIDI, .wav for audio): what "use as prompt" feeds back.
    ``audio``: the WAV the player plays (MIDI rendered with the chosen synth). ``downloads``: MIDI (if
    any), WAV, FLAC and the provenance JSON. ``image``: piano roll (MIDI) or spectrogram (audio).
    ``batch_size``: how many samples were drawn with its seed (a model may draw them together, so
    making it again takes the same seed and the same number).
    """

    kind: str
    source: Path
    audio: Path
    downloads: tuple[Path, ...]
    image: Path
    provenance_json: str
    seed: int | None
    summary: str
    batch_size: int = 1  # the num_samples it was drawn with: same seed + same batch size = the same sample
    model: str = ""  # the model that made it (a "Regenerate bars" of it asks the same model)
    regenerated: tuple[int, int] | None = None  # the bars written anew, when it is another result's bars rewritten


def save_result(studio: Studio, output: MidiOutput | AudioOutput, folder: Path, index: int,
                synth: str = "fluidsynth", soundfont: str | None = None) -> ResultFiles:
    """Write ``output``'s files into ``folder``; MIDI is rendered to audio with ``synth`` ('fluidsynth'
    with ``soundfont``, default: the General MIDI one; or 'ddsp:NAME')."""
    prov = output.provenance
    stem = _safe(f"{prov.model}-seed{prov.seed}-{index + 1}")
    if isinstance(output, MidiOutput):
        source = output.save(folder / f"{stem}.mid")  # + <stem>.mid.json, the provenance sidecar
        audio = studio.render(output, synth=synth, soundfont=soundfont)
        wav = audio.save(folder / f"{stem}.wav", sidecar=False)
        flac = audio.save(folder / f"{stem}.flac", sidecar=False)
        image = output.piano_roll(folder / f"{stem}.png")
        downloads = (source, wav, flac, Path(f"{source}.json"))
        kind = "midi"
    else:
        wav = source = output.save(folder / f"{stem}.wav")
        flac = output.save(folder / f"{stem}.flac", sidecar=False)
        image = output.spectrogram(folder / f"{stem}.png")  # with the score's piano roll when it performs one
        downloads = (wav, flac, Path(f"{wav}.json"))
        if output.score is not None:  # compose, then perform: AudioOutput.save wrote its score beside it
            downloads = (wav.with_suffix(".mid"), *downloads)
        kind = "audio"
    regenerated = prov.notes.get("regenerated_bars")
    return ResultFiles(kind=kind, source=source, audio=wav, downloads=downloads, image=image,
                       provenance_json=prov.to_json(), seed=_call_seed(prov), summary=_summary(output, index),
                       batch_size=int(prov.sampling.get("num_samples") or 1), model=prov.model,
                       regenerated=(int(regenerated[0]), int(regenerated[1])) if regenerated else None)


def _call_seed(prov: Provenance) -> int | None:
    """The seed that makes the whole call again ("Regenerate with this seed" asks for the same number of
    samples): the call's, which the sidecar's sampling records; a diffusion candidate's own seed is the
    call's + its index."""
    seed = prov.sampling.get("seed") if isinstance(prov.sampling, dict) else None
    return prov.seed if seed is None else int(seed)


def _summary(output: MidiOutput | AudioOutput, index: int) -> str:
    notes = output.provenance.notes
    parts = [f"**Sample {index + 1}**", f"seed {output.provenance.seed}"]
    parts += [fmt.format(notes[k]) for k, fmt in _SUMMARY_NOTES if notes.get(k) not in (None, "")]
    if notes.get("form") not in (None, "", "through-composed"):
        parts.append(f"form {notes['form']}")
    if notes.get("continued_bars"):
        parts.append(f"after {notes['continued_bars']} bars of prompt")
    if notes.get("regenerated_bars"):
        first, last = notes["regenerated_bars"]
        parts.append(f"bar {first} written anew" if first == last else f"bars {first}-{last} written anew")
    parts.append(f"{output.duration_s:.1f} s")
    return " · ".join(parts)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:100]


def reload_midi_output(source: str | Path) -> MidiOutput:
    """A MIDI result written by ``save_result`` read back with its provenance (to render it again)."""
    provenance = Provenance.from_json(Path(f"{source}.json").read_text(encoding="utf-8"))
    return MidiOutput(MidiOutput.load(source).score, provenance)
