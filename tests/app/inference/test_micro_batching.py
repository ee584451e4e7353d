import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.core.classifier import OnnxCellClassifier
from app.inference.micro_batching import MicroBatcher


@pytest.fixture
def classifier(brightness_model_dir):
    return OnnxCellClassifier(brightness_model_dir)


def tensors(count: int) -> list[np.ndarray]:
    return [np.full((3, 32, 32), value, np.float32) for value in np.linspace(0, 0.5, count)]


def run_concurrently(batcher: MicroBatcher, inputs: list[np.ndarray]):
    async def main():
        try:
            return await asyncio.gather(*(batcher.infer(t) for t in inputs))
        finally:
            await batcher.close()

    return asyncio.run(main())


def test_concurrent_requests_share_a_batch_and_get_their_own_answers(classifier):
    observed = []
    with ThreadPoolExecutor(2) as pool:
        batcher = MicroBatcher(
            classifier,
            pool,
            max_batch=8,
            max_wait_seconds=0.5,
            incoming=lambda: 1,
            observe=lambda *a: observed.append(a),
        )
        inputs = tensors(8)
        results = run_concurrently(batcher, inputs)
    expected = classifier.predict(np.stack(inputs)).probabilities
    np.testing.assert_allclose([r.probability for r in results], expected, atol=1e-6)
    assert max(r.batch_size for r in results) > 1
    assert sum(size for _, size, _ in observed) == 8
    assert all(size <= 8 for _, size, _ in observed)


def test_batches_never_exceed_the_maximum(classifier):
    with ThreadPoolExecutor(2) as pool:
        batcher = MicroBatcher(
            classifier, pool, max_batch=3, max_wait_seconds=0.2, incoming=lambda: 1
        )
        results = run_concurrently(batcher, tensors(7))
    assert max(r.batch_size for r in results) <= 3
    assert len(results) == 7


def test_a_lone_request_does_not_wait_for_company(classifier):
    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(
            classifier, pool, max_batch=16, max_wait_seconds=30.0, incoming=lambda: 0
        )
        started = time.perf_counter()
        (result,) = run_concurrently(batcher, tensors(1))
    assert result.batch_size == 1
    assert time.perf_counter() - started < 10.0  # far below the 30 s it would wait for company


def test_an_inference_failure_reaches_every_caller(classifier):
    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(
            classifier, pool, max_batch=4, max_wait_seconds=0.2, incoming=lambda: 1
        )

        async def main():
            wrong = np.zeros((3, 8, 8), np.float32)  # the model wants 32 x 32
            try:
                return await asyncio.gather(
                    batcher.infer(wrong), batcher.infer(wrong), return_exceptions=True
                )
            finally:
                await batcher.close()

        outcomes = asyncio.run(main())
    assert all(isinstance(outcome, Exception) for outcome in outcomes)
