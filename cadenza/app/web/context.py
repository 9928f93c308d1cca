"""What every tab of the web studio shares: the Studio, the model list, the workspace, job and upload rules."""

from __future__ import annotations

from dataclasses import dataclass, field

from cadenza.app.web.jobs import JobBoard, ModelGates
from cadenza.app.web.uploads import DEFAULT_MAX_UPLOAD_BYTES, UploadPolicy
from cadenza.app.web.workspace import Workspace
from cadenza.errors import CheckpointError
from cadenza.studio import ModelInfo, Studio

MAX_SAMPLES = 4  # result slots on the page (and the most samples one click asks for)


@dataclass(frozen=True)
class AppSettings:
    """``max_upload_bytes``: the largest upload accepted, per file. ``default_model``: the model picked
    when the page opens (None: the first symbolic model)."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    default_model: str | None = None
    title: str = "Cadenza studio"


@dataclass
class AppContext:
    studio: Studio
    settings: AppSettings
    models: list[ModelInfo]
    workspace: Workspace
    uploads: UploadPolicy
    jobs: JobBoard = field(default_factory=JobBoard)
    gates: ModelGates = field(default_factory=ModelGates)

    def model(self, name: str | None) -> ModelInfo:
        for info in self.models:
            if info.name == name:
                return info
        raise CheckpointError(f"no model named {name!r}; pick one from the list")

    def default_model(self) -> ModelInfo | None:
        if not self.models:
            return None
        wanted = self.settings.default_model
        for info in self.models:
            if info.name == wanted:
                return info
        return next((m for m in self.models if m.family == "symbolic"), self.models[0])

    def ddsp_models(self) -> list[ModelInfo]:
        return [m for m in self.models if m.family == "ddsp"]

    def synth_choices(self) -> list[str]:
        """How MIDI becomes audio: FluidSynth (the General MIDI SoundFont) or a DDSP instrument."""
        return ["fluidsynth"] + [f"ddsp:{m.name}" for m in self.ddsp_models()]
