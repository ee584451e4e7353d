import asyncio
import threading

import pytest

from app.inference.budget import (
    CLIENT_CLOSED_REQUEST,
    WAITING,
    ClientGoneError,
    WorkBudget,
    budgeted,
    check_budget,
    client_has_gone,
    unless_client_gone,
)
from app.inference.upload_checks import UploadRejectedError


def test_outside_a_request_there_is_no_budget():
    check_budget("decoding")  # the command-line predictor and training: no limit


def test_a_spent_budget_stops_the_next_step():
    budget = WorkBudget(0.0)
    with pytest.raises(UploadRejectedError) as caught:
        budget.check("decoding")
    assert caught.value.status_code == 413
    assert "decoding took longer than the 0 s budget" in caught.value.detail


def test_waiting_past_the_budget_is_busy_not_too_large():
    with pytest.raises(UploadRejectedError) as caught:
        WorkBudget(0.0).check(WAITING)
    assert caught.value.status_code == 503


def test_a_gone_client_stops_the_next_step_at_once():
    budget = WorkBudget(60.0)
    budget.check("decoding")
    budget.client_gone()
    with pytest.raises(ClientGoneError) as caught:
        budget.check("decoding")
    assert caught.value.status_code == CLIENT_CLOSED_REQUEST


def test_only_a_gone_client_counts_as_gone_not_a_late_one():
    assert not client_has_gone()  # outside a request

    async def main() -> None:
        async with budgeted(60.0) as budget:
            budget.deadline = 0.0
            assert not client_has_gone()  # late, but somebody is waiting for the answer
            budget.client_gone()
            assert client_has_gone()

    asyncio.run(main())


def test_a_client_that_leaves_stops_the_work_in_the_thread():
    """The work runs in a thread, step by step; once the client is gone it stops before the
    next step instead of running to the end for nobody."""
    steps_done = []
    first_step_running = threading.Event()
    stopped = threading.Event()

    def work(budget: WorkBudget) -> None:
        try:
            for step in range(50):
                first_step_running.set()
                budget.check(f"step {step}")
                steps_done.append(step)
                threading.Event().wait(0.02)
        except ClientGoneError:
            stopped.set()

    async def scenario():
        async with budgeted(60.0) as budget:
            loop = asyncio.get_running_loop()
            job = loop.run_in_executor(None, work, budget)

            async def is_disconnected() -> bool:
                return first_step_running.is_set()

            with pytest.raises(ClientGoneError):
                await unless_client_gone(job, is_disconnected, budget)

    asyncio.run(scenario())
    assert stopped.wait(10)  # the thread itself stopped at its next check
    assert len(steps_done) < 50
