"""The shared training helpers: the schedule's shape and an exact resume."""

import pytest
import torch

from cadenza.training import load_state, save_state, warmup_cosine_lr


def test_warmup_cosine_shape():
    lr = [warmup_cosine_lr(s, peak=1.0, warmup=10, total=110, floor_ratio=0.1) for s in range(120)]
    assert lr[0] == pytest.approx(0.1) and lr[9] == pytest.approx(1.0)
    assert lr[10] == pytest.approx(1.0) and lr[60] == pytest.approx(0.55)
    assert lr[110] == pytest.approx(0.1) and lr[119] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lr[10:], lr[11:]))


def test_save_and_load_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    save_state(tmp_path / "state.pt", model, optimizer, 7, data_seed=123)
    twin = torch.nn.Linear(3, 2)
    twin_opt = torch.optim.AdamW(twin.parameters(), lr=1e-2)
    state = load_state(tmp_path / "state.pt", twin, twin_opt)
    assert state["step"] == 7 and state["data_seed"] == 123
    assert torch.equal(twin.weight, model.weight)
    assert twin_opt.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert load_state(tmp_path / "missing.pt", twin, None) is None
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]  # no temporary file left behind


def test_recipe_command_reports_the_runs_real_steps(tmp_path):
    import json

    from cadenza.training import recipe_command

    (tmp_path / "config.json").write_text(json.dumps({"train": {"max_steps": 1234}}))
    assert (recipe_command("train --max-steps {max_steps} && export checkpoints/{name}", tmp_path, "m")
            == "train --max-steps 1234 && export checkpoints/m")
    model = torch.nn.Linear(2, 2)
    save_state(tmp_path / "state.pt", model, torch.optim.SGD(model.parameters(), lr=0.1), step=1000)
    assert (recipe_command("train --max-steps {max_steps} && export checkpoints/{name}", tmp_path, "m")
            == "train --max-steps 1234 --stop-at 1000 && export checkpoints/m")
    save_state(tmp_path / "state.pt", model, torch.optim.SGD(model.parameters(), lr=0.1), step=1234)
    assert recipe_command("train --max-steps {max_steps}", tmp_path, "m") == "train --max-steps 1234"


def test_a_missing_run_is_a_clear_error(tmp_path):
    from cadenza.errors import CheckpointError
    from cadenza.training import recipe_command

    with pytest.raises(CheckpointError, match="train first"):
        recipe_command("{max_steps}", tmp_path / "nope", "m")


def test_a_fine_tuned_run_names_its_start_and_its_own_steps(tmp_path):
    import json

    from cadenza.training import fine_tune_command

    base = tmp_path / "ckpt"
    base.mkdir()
    (base / "manifest.json").write_text(json.dumps({"made_by": {"command": "cadenza train x --max-steps 9"}}))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"train": {"init_from": str(base), "lr": 0.0005, "max_steps": 300}}))
    command = fine_tune_command("cadenza train y --init-from {init_from} --run {run} --max-steps {max_steps} --lr {lr} "
                                "&& cadenza train y --export checkpoints/{name} --codec {codec}", run, "m", codec="C")
    assert command == (f"cadenza train x --max-steps 9 && cadenza train y --init-from {base} --run {run} --max-steps 300 "
                       "--lr 0.0005 && cadenza train y --export checkpoints/m --codec C")
    (run / "config.json").write_text(json.dumps({"train": {"lr": 0.001, "max_steps": 300}}))
    assert fine_tune_command("x", run, "m") is None
