"""The errors Cadenza raises. Each message says what was wrong and what to do about it."""


class CadenzaError(Exception):
    """Base class: every error Cadenza raises on purpose derives from this."""


class InvalidConditioning(CadenzaError, ValueError):
    """A Conditioning or Sampling field has a value no model could honour (tempo 900 BPM, key 'H major')."""


class UnsupportedConditioning(CadenzaError, ValueError):
    """The chosen model cannot honour a field that was set; it is never dropped silently."""


class CorruptInput(CadenzaError, ValueError):
    """An input file (MIDI, audio) is empty, truncated, or not what its name says."""


class CorruptMidi(CorruptInput):
    """A MIDI file is empty, truncated, not MIDI at all, or has no notes to play."""


class InputNotFound(CorruptInput, FileNotFoundError):
    """An input file does not exist: a ``CorruptInput`` (callers that catch bad inputs catch this too)
    and a ``FileNotFoundError`` (callers that think in OS terms can too)."""


class CheckpointError(CadenzaError, RuntimeError):
    """A checkpoint is missing, malformed, or its files do not match the sha256 in its manifest."""


class MissingDependency(CadenzaError, RuntimeError):
    """An optional system program or Python package is needed; the message says how to install it."""


class ServerSetupError(CadenzaError, ValueError):
    """The web studio cannot start as asked: reachable from other machines with no login, or a login file
    that is missing, malformed or readable by every user; refused before the server starts."""


class DeviceUnavailable(CadenzaError, RuntimeError):
    """The device asked for (``cuda``, ``mps``, ...) is not present or not a device name."""


class Cancelled(CadenzaError):
    """Generation was stopped by a cancel callback."""


class InputTooLong(CadenzaError, ValueError):
    """An input (a MIDI file to render, a prompt, a recording) is longer than the limit it is checked
    against (``--max-duration``, default one hour); refused before any work starts."""


class OutputError(CadenzaError, OSError):
    """An output cannot be written: its path is a folder, its folder is read-only, the disk is full, or
    the file system refuses its name. Nothing partial is left behind."""
