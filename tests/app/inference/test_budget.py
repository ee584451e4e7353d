import asyncio
import threading

import pytest

from app.core.domain.outcomes import RefusalKind, RefusedError
from app.inference.budget import WAITING, WorkBudget
from app.web.client_watch import unless_client_gone


def test_without_a_deadline_nothing_is_refused():
    budget = WorkBudget()  # the command line, Ray and benchmarks: no limit
    budget.check("decoding")
    assert budget.seconds_left(10.0) == 10.0


def test_a_spent_budget_stops_the_next_step():
    budget = WorkBudget(0.0)
    with pytest.raises(RefusedError) as caught:
        budget.check("decoding")
    assert caught.value.kind is RefusalKind.OVER_BUDGET
    assert "decoding took longer than the 0 s budget" in caught.value.reason


def test_waiting_past_the_budget_is_busy_not_too_large():
    with pytest.raises(RefusedError) as caught:
        WorkBudget(0.0).check(WAITING)
    assert caught.value.kind is RefusalKind.BUSY


def test_a_gone_client_stops_the_next_step_at_once():
    budget = WorkBudget(60.0)
    budget.check("decoding")
    budget.client_gone()
    with pytest.raises(RefusedError) as caught:
        budget.check("decoding")
    assert caught.value.kind is RefusalKind.CLIENT_GONE


def test_only_a_gone_client_counts_as_gone_not_a_late_one():
    budget = WorkBudget(60.0)
    budget.deadline = 0.0
    assert not budget.is_client_gone  # late, but somebody is waiting for the answer
    budget.client_gone()
    assert budget.is_client_gone


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
        except RefusedError:
            stopped.set()

    async def scenario():
        budget = WorkBudget(60.0)
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(None, work, budget)

        async def is_disconnected() -> bool:
            return first_step_running.is_set()

        with pytest.raises(RefusedError) as caught:
            await unless_client_gone(job, is_disconnected, budget)
        assert caught.value.kind is RefusalKind.CLIENT_GONE

    asyncio.run(scenario())
    assert stopped.wait(10)  # the thread itself stopped at its next check
    assert len(steps_done) < 50
