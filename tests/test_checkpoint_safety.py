"""Encoder trainer state loads with torch.load(weights_only=True) (issue #16): plain data loads,
a pickle that would run code is refused with a named error and never runs."""
from __future__ import annotations

import os

import pytest
import torch

from moon_features.encoder.checkpoint import TRAINER_STATE, load_trainer_state
from moon_features.encoder.errors import CheckpointMismatchError


def test_trainer_state_of_plain_data_round_trips(tmp_path):
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    state = {"epochs_done": 2, "optimizer": opt.state_dict(),
             "queue": {"z": torch.randn(8, 4), "ids": torch.arange(8), "rows": torch.full((8,), -1)},
             "history": [{"epoch": 1, "stage": "pretrain", "loss": 0.5}], "seed": 3,
             "schedule": {"lr": 5e-4, "epochs": (1, 1), "name": "demo", "extra": None}}
    torch.save(state, tmp_path / TRAINER_STATE)
    loaded = load_trainer_state(tmp_path)
    assert loaded["seed"] == 3 and loaded["schedule"] == state["schedule"]
    assert torch.equal(loaded["queue"]["z"], state["queue"]["z"])
    opt.load_state_dict(loaded["optimizer"])


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch /tmp/moon_checkpoint_code_ran",))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    marker = "/tmp/moon_checkpoint_code_ran"
    if os.path.exists(marker):
        os.remove(marker)
    torch.save({"seed": 1, "evil": _RunsCode()}, tmp_path / TRAINER_STATE)
    with pytest.raises(CheckpointMismatchError, match="no-resume"):
        load_trainer_state(tmp_path)
    assert not os.path.exists(marker)


def test_a_damaged_trainer_state_is_a_named_error(tmp_path):
    (tmp_path / TRAINER_STATE).write_bytes(b"\x80\x02garbage")
    with pytest.raises(CheckpointMismatchError):
        load_trainer_state(tmp_path)
