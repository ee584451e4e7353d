"""One slow kind of work used to starve the rest (a plain PNG took 6.7 s beside 32 clients
looping progressive JPEGs, 10.3 s beside 16 explained TTA requests). Each heavy kind now has a
bounded share of the workers."""

import asyncio

import pytest

from app.core.domain.outcomes import RefusalKind, RefusedError
from app.inference.work_shares import ServerBusyError, WorkKind, WorkShare, kind_of
from bench.fair_shares import plain_beside


def test_the_kind_comes_from_the_options_and_the_files_first_bytes():
    assert kind_of(b"\x89PNG\r\n", explain=False, tta=False) is WorkKind.PLAIN
    assert kind_of(b"BM....", explain=False, tta=False) is WorkKind.PLAIN
    assert kind_of(b"\xff\xd8\xff\xe0", explain=False, tta=False) is WorkKind.HEAVY_DECODE
    assert kind_of(b"II*\x00", explain=False, tta=False) is WorkKind.HEAVY_DECODE
    assert kind_of(b"MM\x00*", explain=False, tta=False) is WorkKind.HEAVY_DECODE
    assert kind_of(b"\x89PNG", explain=True, tta=False) is WorkKind.EXPLAINED
    assert kind_of(b"\xff\xd8", explain=False, tta=True) is WorkKind.EXPLAINED


def test_a_share_runs_its_slots_queues_the_next_and_refuses_beyond_at_once():
    async def scenario() -> list[str]:
        share = WorkShare(WorkKind.EXPLAINED, slots=1, queue=1)
        release = asyncio.Event()
        events: list[str] = []

        async def one(name: str) -> None:
            try:
                async with share.held():
                    events.append(f"{name} runs")
                    await release.wait()
            except ServerBusyError:
                events.append(f"{name} refused")

        tasks = [asyncio.create_task(one(name)) for name in ("a", "b", "c")]
        await asyncio.sleep(0.05)
        assert (share.running, share.waiting) == (1, 1)
        release.set()
        await asyncio.gather(*tasks)
        share.close()
        return events

    assert asyncio.run(scenario()) == ["a runs", "c refused", "b runs"]


def test_a_request_that_waits_out_its_budget_is_refused_busy():
    async def scenario() -> RefusedError:
        share = WorkShare(WorkKind.HEAVY_DECODE, slots=1, queue=4)
        async with share.held():
            with pytest.raises(RefusedError) as refused:
                async with share.held(seconds=0.05):
                    pass
        share.close()
        return refused.value

    refusal = asyncio.run(scenario())
    assert refusal.kind is RefusalKind.BUSY
    assert "heavy decode" in refusal.reason


@pytest.fixture(scope="module")
def bundled_server(module_server_launcher):
    """The bundled models (their Grad-CAM graphs), 2 worker threads, as on the 2-core host."""
    return module_server_launcher(LEUKOLENS_WORKER_THREADS="2")


@pytest.mark.parametrize(("kind", "clients"), [("jpeg", 12), ("explain", 8)])
def test_a_plain_prediction_keeps_its_pace_beside_a_crowd_of_heavy_ones(
    bundled_server, kind, clients
):
    """A bounded load on loopback, for 6 s. Measured within the run: the plain requests' median
    is a small part of the heavy ones' (on the code before, they queued behind them and
    waited as long), and within the issue's second."""
    measured = plain_beside(bundled_server, kind, clients, seconds=6.0)
    assert measured["plain_n"] >= 5
    statuses = set(measured["heavy_statuses"])
    assert statuses <= {200, 503}, statuses  # heavy ones wait, or are told to come back
    assert measured["heavy_median_s"] is not None
    assert measured["plain_median_s"] < 0.3 * measured["heavy_median_s"], measured
    assert measured["plain_median_s"] < 1.0, measured
