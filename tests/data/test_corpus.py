"""The music21 corpus rebuild: score -> MIDI + MANIFEST.tsv; a --corpus flag must name a corpus."""

import pytest
import symusic

from cadenza.data.corpus import read_manifest, rebuild_from_music21


def test_rebuild_from_music21_writes_midi_and_manifest(tmp_path):
    entries = rebuild_from_music21(tmp_path, collections=["bach"], limit=1, timeout_s=120)
    assert len(entries) == 1 and entries[0].collection == "bach"
    assert read_manifest(tmp_path) == entries
    assert symusic.Score(tmp_path / "midi" / entries[0].path).note_num() > 20


@pytest.mark.parametrize("recipe", ["symbolic", "audio-data"])
def test_a_corpus_flag_naming_no_corpus_is_an_error_not_a_rebuild(tmp_path, recipe, capsys):
    from cadenza.app.cli import main

    missing = tmp_path / "no-such-corpus"
    args = ["train", recipe, "--corpus", str(missing)] + (["--prepare"] if recipe == "symbolic" else [])
    assert main(args) == 2
    assert "not a corpus folder" in capsys.readouterr().err
    assert not missing.exists()  # nothing was written into it
