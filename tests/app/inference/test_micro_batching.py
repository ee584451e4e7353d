import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from app.inference.micro_batching import MicroBatcher


class Recorder:
    """A batch runner that answers each item with (item, the size of its batch)."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __call__(self, items):
        self.sizes.append(len(items))
        time.sleep(0.01)
        return [(item, len(items)) for item in items]


def run_concurrently(batcher: MicroBatcher, inputs: list):
    async def main():
        try:
            return await asyncio.gather(*(batcher.submit(item) for item in inputs))
        finally:
            await batcher.close()

    return asyncio.run(main())


def test_concurrent_requests_share_a_batch_and_get_their_own_answers():
    run = Recorder()
    with ThreadPoolExecutor(2) as pool:
        batcher = MicroBatcher(run, pool, max_batch=8, max_wait_seconds=0.5, incoming=lambda: 1)
        results = run_concurrently(batcher, list(range(8)))
    assert [item for item, _ in results] == list(range(8))
    assert max(size for _, size in results) > 1
    assert sum(run.sizes) == 8
    assert all(size <= 8 for size in run.sizes)


def test_batches_never_exceed_the_maximum():
    with ThreadPoolExecutor(2) as pool:
        batcher = MicroBatcher(
            Recorder(), pool, max_batch=3, max_wait_seconds=0.2, incoming=lambda: 1
        )
        results = run_concurrently(batcher, list(range(7)))
    assert max(size for _, size in results) <= 3
    assert len(results) == 7


def test_a_lone_request_does_not_wait_for_company():
    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(
            Recorder(), pool, max_batch=16, max_wait_seconds=30.0, incoming=lambda: 0
        )
        started = time.perf_counter()
        ((_, size),) = run_concurrently(batcher, [0])
    assert size == 1
    assert time.perf_counter() - started < 10.0  # far below the 30 s it would wait for company


def test_a_failure_reaches_every_caller():
    def failing(items):
        raise ValueError("the model wants 32 x 32")

    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(failing, pool, max_batch=4, max_wait_seconds=0.2, incoming=lambda: 1)

        async def main():
            try:
                return await asyncio.gather(
                    batcher.submit(1), batcher.submit(2), return_exceptions=True
                )
            finally:
                await batcher.close()

        outcomes = asyncio.run(main())
    assert all(isinstance(outcome, ValueError) for outcome in outcomes)


def test_the_service_shares_a_batch_through_the_prediction_path(model_store, real_cell_png):
    """Concurrent single images are answered from shared runs of predict_prepared, each with
    its own request id, and the observer hears every image."""
    from app.core.model_registry import ModelRegistry
    from app.inference.prediction_path import Upload
    from app.inference.service import BatchingPolicy, PredictionService
    from app.inference.upload_checks import UploadLimits

    observed = []
    service = PredictionService(
        ModelRegistry.load(model_store),
        UploadLimits(max_bytes=10**7),
        4,
        batching=BatchingPolicy(max_batch=8, max_wait_seconds=0.2),
        observe_inference=lambda *args: observed.append(args),
    )

    async def main():
        try:
            return await asyncio.gather(
                *(
                    service.predict(Upload("c.png", real_cell_png), request_id=f"r{n}")
                    for n in range(6)
                )
            )
        finally:
            await service.aclose()

    answers = asyncio.run(main())
    assert [answer.request_id for answer in answers] == [f"r{n}" for n in range(6)]
    assert len({answer.probability_all for answer in answers}) == 1
    assert sum(size for _, size, _ in observed) == 6
