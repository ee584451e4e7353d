import asyncio
import threading

import pytest

from app.service.model_registry import ModelRegistry
from app.service.prediction_pipeline import Upload
from app.service.prediction_service import PredictionService, ServerBusyError
from app.service.upload_checks import UploadLimits
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
    answer = service.pipeline.answer

    def recording_answer(*args, **kwargs):
        answered_on.append(threading.current_thread().name)
        return answer(*args, **kwargs)

    monkeypatch.setattr(service.pipeline, "answer", recording_answer)

    async def main():
        return await service.predict(Upload("cell.png", real_cell_png), explain=True)

    try:
        prediction = asyncio.run(main())
    finally:
        service.close()
    assert prediction.explanation is not None
    assert len(answered_on) == 1
    assert answered_on[0].startswith("leukolens")


def test_admission_refuses_beyond_the_queue_depth(model_store):
    service = PredictionService(
        ModelRegistry.load(model_store), UploadLimits(10**7, 10**7), 1, max_in_flight=1
    )

    async def main():
        async with service.admitted():
            with pytest.raises(ServerBusyError):
                async with service.admitted():
                    pass
        async with service.admitted():  # the place is free again
            return service.in_flight

    assert asyncio.run(main()) == 1
    service.close()


def test_a_full_queue_answers_503_with_retry_after(client, real_cell_png):
    service = client.app.state.service
    service.in_flight = service.max_in_flight
    try:
        response = client.post("/api/v1/predict", files={"file": ("c.png", real_cell_png)})
    finally:
        service.in_flight = 0
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "busy" in response.json()["detail"]
