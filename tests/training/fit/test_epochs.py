import pytest
import torch

from training.fit.epochs import warmup_cosine


def test_warmup_then_cosine_schedule():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scheduler = warmup_cosine(optimizer, warmup_steps=2, total_steps=6)
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.5)
    assert rates[1] == pytest.approx(1.0)
    assert rates[2] == pytest.approx(1.0)
    assert rates[2] > rates[3] > rates[4] > rates[5] > 0


def test_early_stopping_counts_epochs_without_gain():
    from training.fit.epochs import EarlyStopping

    stopping = EarlyStopping(patience=2)
    for improved in (True, False):
        stopping.update(improved)
    assert not stopping.should_stop
    stopping.update(False)
    assert stopping.should_stop
    stopping.update(True)
    assert not stopping.should_stop
    never = EarlyStopping(patience=None, epochs_without_gain=99)
    assert not never.should_stop
