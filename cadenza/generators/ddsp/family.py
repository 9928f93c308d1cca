"""The DDSP family: learned instruments (harmonic + noise synths) for timbre transfer and playing MIDI."""

from cadenza.generators.family import Family, Recipe

FAMILY = Family(
    name="ddsp",
    output="audio",
    generator="cadenza.generators.ddsp.generator:DDSPGenerator",
    sampling=frozenset(),
    description="DDSP instrument: a recording (timbre transfer) or MIDI played by a learned instrument",
    recipes={"ddsp": Recipe("cadenza.generators.ddsp.recipe", "a DDSP instrument from recordings of one instrument")},
    options="cadenza.generators.ddsp.transfer:TransferOptions",
    name_prefix="ddsp-",
)
