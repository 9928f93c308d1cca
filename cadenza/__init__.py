"""Cadenza: a music generation studio. Start with ``Studio``, ``Conditioning`` and ``Sampling``."""

from cadenza.conditioning import Capability, Conditioning, Sampling
from cadenza.errors import (CadenzaError, Cancelled, CheckpointError, CorruptInput, CorruptMidi, InputTooLong,
                            InvalidConditioning, MissingDependency, OutputError, UnsupportedConditioning)
from cadenza.generators.base import Callbacks
from cadenza.outputs import AudioOutput, MidiOutput, Provenance
from cadenza.studio import ModelInfo, Studio

__all__ = ["Studio", "ModelInfo", "Conditioning", "Sampling", "Callbacks", "Capability", "MidiOutput", "AudioOutput",
           "Provenance", "CadenzaError", "InvalidConditioning", "UnsupportedConditioning", "CorruptInput", "CorruptMidi",
           "CheckpointError", "MissingDependency", "Cancelled", "InputTooLong", "OutputError"]
