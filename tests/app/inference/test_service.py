import asyncio
import threading

import pytest

from app.core.model_registry import ModelRegistry, UnknownModelError
from app.inference import prediction_path
from app.inference import service as service_module
from app.inference.in_flight import InFlight
from app.inference.prediction_path import Upload
from app.inference.service import PredictionService
from app.inference.upload_checks import UploadLimits
from app.inference.work_shares import ServerBusyError
from app.settings import bundled_model_store


@pytest.fixture
def service(model_store):
    service = PredictionService(
        ModelRegistry.load(model_store), UploadLimits(max_bytes=10**7, max_pixels=10**7), 2
    )
    yield service
    service.close()


def test_run_moves_work_off_the_event_loop(service):
    async def main() -> str:
        return await service.run(lambda: threading.current_thread().name)

    assert asyncio.run(main()).startswith("leukolens")


def test_an_explanation_is_drawn_off_the_event_loop(real_cell_png, monkeypatch):
    """Drawing the map takes milliseconds (3.4 on a fold-1 cell): on the event loop they would
    stall every other client's requests."""
    service = PredictionService(
        ModelRegistry.load(bundled_model_store()), UploadLimits(10**7, 10**7), 2
    )
    answered_on: list[str] = []
    answer = prediction_path.answer

    def recording_answer(*args, **kwargs):
        answered_on.append(threading.current_thread().name)
        return answer(*args, **kwargs)

    monkeypatch.setattr(prediction_path, "answer", recording_answer)

    async def main():
        return await service.predict(Upload("cell.png", real_cell_png), explain=True)

    try:
        prediction = asyncio.run(main())
    finally:
        service.close()
    assert prediction.explanation is not None
    assert len(answered_on) == 1
    assert answered_on[0].startswith("leukolens")


def test_admission_refuses_beyond_the_queue_depth_after_looking_the_model_up(
    model_store, real_cell_png
):
    service = PredictionService(
        ModelRegistry.load(model_store), UploadLimits(10**7, 10**7), 1, in_flight=InFlight(1)
    )

    async def main():
        with service.in_flight.admitted():
            with pytest.raises(UnknownModelError):  # never worth a retry: said first
                await service.predict(Upload("c.png", real_cell_png), model_id="nope")
            with pytest.raises(ServerBusyError):
                await service.predict(Upload("c.png", real_cell_png))
            with pytest.raises(ServerBusyError):
                await service.predict_batch([Upload("c.png", real_cell_png)])
        prediction = await service.predict(Upload("c.png", real_cell_png))  # free again
        return prediction, service.in_flight.count

    prediction, count = asyncio.run(main())
    assert prediction.label is not None
    assert count == 0
    service.close()


def test_a_full_queue_answers_503_with_retry_after(client, real_cell_png):
    in_flight = client.app.state.service.in_flight
    assert in_flight is client.app.state.in_flight  # one count: the edge reads the service's
    in_flight.count = in_flight.limit
    try:
        response = client.post("/api/v1/predict", files={"file": ("c.png", real_cell_png)})
    finally:
        in_flight.count = 0
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "busy" in response.json()["detail"]


def test_batches_never_hold_every_worker(model_store, real_cell_png, monkeypatch):
    """Under a mixed load, two long batches on two workers once left single images waiting
    past their budget (503). A batch may hold all workers but one."""
    service = PredictionService(
        ModelRegistry.load(model_store), UploadLimits(max_bytes=10**7), worker_threads=2
    )
    release = threading.Event()
    real = service_module.predict_uploads

    def long_batch(*args, **kwargs):
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(service_module, "predict_uploads", long_batch)

    async def scenario():
        batches = [
            asyncio.ensure_future(service.predict_batch([Upload("a.png", real_cell_png)]))
            for _ in range(2)
        ]
        await asyncio.sleep(0.2)
        single = await asyncio.wait_for(service.predict(Upload("c.png", real_cell_png)), 20)
        assert not any(batch.done() for batch in batches)  # answered while both still run
        release.set()
        return single, await asyncio.gather(*batches)

    single, batches = asyncio.run(scenario())
    assert 0.0 <= single.probability_all <= 1.0
    assert all(len(outcomes) == 1 for outcomes in batches)
    service.close()


def test_a_client_that_leaves_while_its_record_waits_leaves_no_cell(
    model_store, real_cell_png, tmp_path
):
    """Cancelled while its record waits for the samples' turn (client_watch cancels the
    request when the client goes): nothing was answered, so nothing joins the sample and the
    audit row says not answered."""
    from app.records.prediction_rows import SampleEntry
    from app.records.review_records import ReviewRecords

    records = ReviewRecords(tmp_path / "a.sqlite3")
    service = PredictionService(
        ModelRegistry.load(model_store),
        UploadLimits(max_bytes=10**7, max_pixels=10**7),
        2,
        records=records.predictions,
    )

    async def main() -> None:
        with records.predictions._sample_turn:  # another write to a sample holds the turn
            task = asyncio.ensure_future(
                service.predict(
                    Upload("cell.png", real_cell_png),
                    request_id="gone",
                    sample=SampleEntry("S-1"),
                )
            )
            for _ in range(200):
                await asyncio.sleep(0.05)
                if records.predictions.backlog:
                    break
            assert records.predictions.backlog  # its record is queued, waiting for the turn
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    try:
        asyncio.run(main())
        records.predictions.flush(10)
        assert records.sample("S-1") is None
        assert [(r.request_id, r.outcome) for r in records.predictions.rows()] == [
            ("gone", "not_answered")
        ]
    finally:
        service.close()
        records.close()
