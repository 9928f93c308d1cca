"""What every tab of the web studio shares: the Studio, the model list, the workspace, job and upload rules."""

from __future__ import annotations

from dataclasses import dataclass, field

from cadenza import CheckpointError, InvalidConditioning, ModelInfo, Studio
from cadenza.app.web.jobs import JobBoard, ModelGates
from cadenza.app.web.limits import DEFAULT_MAX_JOBS
from cadenza.app.web.uploads import (DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_MAX_UPLOAD_TOTAL_BYTES, UploadPolicy,
                                     VisitorUploads)
from cadenza.app.web.workspace import DEFAULT_MAX_SESSIONS, Workspace
from cadenza.errors import ServerSetupError

MAX_SAMPLES = 4  # result slots on the page (and the most samples one click asks for)


@dataclass(frozen=True)
class AppSettings:
    """``max_upload_bytes``: the largest upload accepted, per file. ``default_model``: the model picked
    when the page opens (None: the first symbolic model). ``max_sessions``: visitors whose page state and
    files are kept at once (beyond it, the one idle longest is forgotten). ``logins``: (user, password)
    pairs the page asks for (see ``auth.server_logins``); empty: no login. ``max_jobs_per_visitor``: requests
    one page may have queued or running; ``max_upload_total_bytes``: what one page may upload in all (None:
    200 MB, or four files at the per-file limit when that is more);
    ``max_queue``: requests waiting in all (more get "the queue is full")."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_sessions: int = DEFAULT_MAX_SESSIONS
    logins: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # (user, password); empty: no login
    max_jobs_per_visitor: int = DEFAULT_MAX_JOBS
    max_upload_total_bytes: int | None = None
    max_queue: int = 100

    def __post_init__(self) -> None:
        if not 0 < self.max_upload_bytes < float("inf"):
            raise ServerSetupError("the upload limit (--max-upload-mb) must be a positive number of MB")
        if min(self.max_sessions, self.max_jobs_per_visitor, self.max_queue) < 1:
            raise ServerSetupError("max_sessions, max_jobs_per_visitor and max_queue must be at least 1")
        if self.upload_total_bytes < self.max_upload_bytes:
            raise ServerSetupError("the upload limit per visitor must be at least the limit per file")

    @property
    def upload_total_bytes(self) -> int:
        """What one visit may upload in all."""
        if self.max_upload_total_bytes is not None:
            return self.max_upload_total_bytes
        return max(DEFAULT_MAX_UPLOAD_TOTAL_BYTES, 4 * self.max_upload_bytes)
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

    def uploads_for(self, session: str) -> VisitorUploads:
        """The upload checks for one visitor (``session``): the policy's, and its total so far."""
        return VisitorUploads(self.uploads, self.workspace, session, self.settings.upload_total_bytes,
                              self.workspace.served)

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

    def synth_choices(self) -> list[tuple[str, str]]:
        """How MIDI becomes audio, as (label, value): FluidSynth with the default SoundFont
        ('fluidsynth'), with another installed SoundFont ('soundfont:NAME'), or a DDSP instrument
        ('ddsp:NAME')."""
        fonts = self.studio.soundfonts()
        default = next(iter(fonts), None)
        choices = [(f"FluidSynth · {default} (General MIDI)" if default else "FluidSynth", "fluidsynth")]
        choices += [(f"FluidSynth · {name}", f"soundfont:{name}") for name in list(fonts)[1:]]
        choices += [(f"DDSP · {m.name}", f"ddsp:{m.name}") for m in self.ddsp_models()]
        return choices

    def render_args(self, choice: str) -> dict:
        """``Studio.render`` arguments for a synth choice; a SoundFont is looked up here, by name, so a
        path never comes from the page."""
        if choice == "fluidsynth":
            return {"synth": "fluidsynth"}
        if choice.startswith("soundfont:"):
            fonts = self.studio.soundfonts()
            name = choice.removeprefix("soundfont:")
            if name not in fonts:
                raise InvalidConditioning(f"no SoundFont named {name!r}; installed: {', '.join(fonts) or 'none'}")
            return {"synth": "fluidsynth", "soundfont": str(fonts[name])}
        if choice.startswith("ddsp:") and choice.removeprefix("ddsp:") in {m.name for m in self.ddsp_models()}:
            return {"synth": choice}
        raise InvalidConditioning(f"unknown synth {choice!r}")
