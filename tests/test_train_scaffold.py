"""The training scaffold every trainer shares: one LR schedule, one run logger schema."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from soundtok.train.scaffold import METRICS_COLUMNS, Means, RunLogger, init_distributed, lr_factor, set_lr


def test_lr_schedule_warms_up_linearly_then_decays_by_cosine_to_a_tenth():
    total, warmup = 100, 10
    assert lr_factor(1, total, warmup) == pytest.approx(0.1)
    assert lr_factor(5, total, warmup) == pytest.approx(0.5)
    assert lr_factor(10, total, warmup) == pytest.approx(1.0)  # the peak: end of warm-up
    mid = 10 + 45
    assert lr_factor(mid, total, warmup) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert lr_factor(total, total, warmup) == pytest.approx(0.1)
    f = [lr_factor(s, total, warmup) for s in range(1, total + 1)]
    assert all(a <= b for a, b in zip(f[:10], f[1:10])) and all(a >= b for a, b in zip(f[9:], f[10:]))
    assert lr_factor(1, 5, 0) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 5)))  # no warm-up


def test_set_lr_uses_each_groups_base():
    p, q = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p], "lr": 1.0}, {"params": [q], "lr": 0.5}])
    assert set_lr(opt, 0.5) == 0.5
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.25]
    assert set_lr(opt, 0.1) == pytest.approx(0.1)  # from the base, not the last lr
    assert set_lr(opt, 1.0, base=2.0) == 2.0 and opt.param_groups[1]["lr"] == 2.0


def test_run_logger_schema_and_disabled_ranks(tmp_path):
    log = RunLogger(tmp_path, echo=None)
    log.line("vae", 50, "train", {"loss": torch.tensor(0.25), "lr": 1e-3}, "vae 50/100")
    log.close()
    log = RunLogger(tmp_path)  # a resumed run appends, without a second header
    log.metrics("vae", 100, "val", {"loss": 0.2})
    log.close()
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == METRICS_COLUMNS == ("time", "stage", "step", "split", "metric", "value")
    assert [r[1:] for r in rows[1:]] == [["vae", "50", "train", "loss", "0.25"],
                                         ["vae", "50", "train", "lr", "0.001"],
                                         ["vae", "100", "val", "loss", "0.2"]]
    assert "vae 50/100 loss=0.25 lr=0.001" in (tmp_path / "train.log").read_text()
    other = tmp_path / "rank1"
    other.mkdir()
    quiet = RunLogger(other, enabled=False)
    quiet.line("vae", 1, "train", {"loss": 1.0}, "x")
    quiet.close()
    assert list(other.iterdir()) == []


def test_means_and_single_process_distributed():
    m = Means()
    for v in (1.0, 3.0):
        m.add({"loss": torch.tensor(v)})
        m.step()
    out = m.take()
    assert out["loss"] == 2.0 and out["s_per_step"] >= 0 and m.take()["s_per_step"] >= 0
    d = init_distributed("cpu")
    assert (d.rank, d.world, d.device.type, d.main) == (0, 1, "cpu", True)
    d.barrier()
    d.close()
