"""The offline quality score orders the failure modes it is for; scheduler names are validated and built."""

from __future__ import annotations

import numpy as np
import pytest

from cadenza.errors import InvalidConditioning
from cadenza.generators.diffusion.rerank import quality, rank
from cadenza.generators.diffusion.schedulers import check_scheduler_name, make_scheduler, scheduler_names

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

RATE = 16000


def test_quality_prefers_music_to_noise_clipping_and_silence():
    t = np.arange(RATE) / RATE
    chord = (0.2 * (np.sin(2 * np.pi * 262 * t) + np.sin(2 * np.pi * 330 * t) + np.sin(2 * np.pi * 392 * t)))[None]
    noise = np.random.default_rng(0).normal(0, 0.2, (1, RATE))
    clipped = np.clip(chord * 8, -1, 1)
    silent = np.zeros((1, RATE))
    order, scores = rank([a.astype(np.float32) for a in (noise, clipped, silent, chord)])
    assert order[0] == 3 and set(order[-2:]) == {1, 2}  # the chord first; clipping and silence last
    assert scores[0].flatness > 0.3 > scores[3].flatness
    assert scores[1].clipped > 0.1 and scores[2].silent
    assert quality(chord.astype(np.float32)).to_dict()["silent"] is False


def test_scheduler_names_aliases_and_kinds():
    assert check_scheduler_name("DPM-Solver++", "discrete") == "dpm++"
    assert check_scheduler_name("Euler_A", "discrete") == "euler-a"
    assert {"dpm++", "ddim", "euler", "heun"} <= set(scheduler_names("discrete"))
    assert set(scheduler_names("sigma")) == {"dpm++", "dpm++-sde", "euler"}
    with pytest.raises(InvalidConditioning, match="choose one of: dpm\\+\\+"):
        check_scheduler_name("ddim", "sigma")
    base = {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction"}
    for name in scheduler_names("discrete"):
        scheduler = make_scheduler(name, "discrete", base)
        assert scheduler.config.prediction_type == "v_prediction", name  # the model's settings carry over
    assert type(make_scheduler("heun", "discrete", base)).__name__ == "HeunDiscreteScheduler"
