"""The music21 corpus rebuild: score -> MIDI + MANIFEST.tsv."""

import symusic

from cadenza.data.corpus import read_manifest, rebuild_from_music21


def test_rebuild_from_music21_writes_midi_and_manifest(tmp_path):
    entries = rebuild_from_music21(tmp_path, collections=["bach"], limit=1, timeout_s=120)
    assert len(entries) == 1 and entries[0].collection == "bach"
    assert read_manifest(tmp_path) == entries
    assert symusic.Score(tmp_path / "midi" / entries[0].path).note_num() > 20
