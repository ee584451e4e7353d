"""The server's asynchronous side of prediction: admission, the worker pool, micro-batching and
the records, around the prediction path (app/inference/prediction_path.py).

Blocking work runs on a thread pool (OpenCV and onnxruntime release the GIL); concurrent
single-image requests share batched inferences; beyond a configured number of requests in
flight (app/inference/in_flight.py, the one count) new work is refused at once (503) rather than
queued without bound. Each answer is recorded by the records' one writer (its audit row and,
with a sample id, its cell, in one transaction: app/records/prediction_records.py) and goes out
only once its record is durable: the one wait for that is `_recorded`.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from app.core.classifier import ExplanationUnavailableError, OnnxCellClassifier
from app.core.domain.outcomes import Outcome, Refusal, RefusedError
from app.core.domain.predictions import Prediction
from app.core.model_registry import ModelRegistry
from app.inference.budget import WorkBudget
from app.inference.decoder_processes import DecoderProcesses
from app.inference.in_flight import InFlight
from app.inference.memory_release import release_free_memory
from app.inference.micro_batching import MicroBatcher
from app.inference.prediction_path import (
    InferenceObserver,
    PredictOptions,
    PreparedUpload,
    Upload,
    predict_prepared,
    predict_uploads,
    prepare,
    tta_for,
)
from app.inference.upload_checks import UploadLimits
from app.inference.work_shares import SharePolicy, WorkKind, WorkShare, kind_of
from app.records.pending_records import Pending
from app.records.prediction_records import PredictionRecords
from app.records.prediction_rows import SampleEntry, joined, records_of
from app.records.records_errors import RecordsUnavailableError

T = TypeVar("T")
# How long an answer waits for its record to be durable (journal fsync'd, or committed when the
# journal cannot take it or it joins a sample) before it is refused instead.
RECORD_WAIT_SECONDS = 15.0
NOT_RECORDED_IN_TIME = (
    f"the answer could not be recorded: neither the journal nor the database took it in "
    f"{RECORD_WAIT_SECONDS:g} s; nothing was answered: retry"
)
NO_GRADCAM_GRAPH = "this model's export has no Grad-CAM output; explain=false"


@dataclass(frozen=True)
class BatchingPolicy:
    max_batch: int = 8
    max_wait_seconds: float = 0.005


class PredictionService:
    def __init__(
        self,
        registry: ModelRegistry,
        limits: UploadLimits,
        worker_threads: int,
        *,
        in_flight: InFlight | None = None,
        batching: BatchingPolicy | None = None,
        records: PredictionRecords | None = None,
        observe_inference: InferenceObserver | None = None,
        decoders: DecoderProcesses | None = None,
        shares: SharePolicy | None = None,
    ) -> None:
        self.registry = registry
        self.limits = limits
        self.observe_inference = observe_inference
        self.decoders = decoders
        self.executor = ThreadPoolExecutor(worker_threads, thread_name_prefix="leukolens")
        self.in_flight = in_flight or InFlight()
        self.batch_slots = asyncio.Semaphore(max(1, worker_threads - 1))
        self.records = records
        self.plain_in_flight = 0
        self.preparing = 0
        shares = shares or SharePolicy()
        self.shares = {
            WorkKind.EXPLAINED: WorkShare(
                WorkKind.EXPLAINED, shares.explained_slots, shares.heavy_queue
            ),
            WorkKind.HEAVY_DECODE: WorkShare(
                WorkKind.HEAVY_DECODE, shares.heavy_decode_slots, shares.heavy_queue
            ),
        }
        policy = batching or BatchingPolicy()
        self.batchers: dict[str, MicroBatcher[PreparedUpload, Outcome]] = {
            model_id: MicroBatcher(
                partial(self._predict_shared, classifier),
                self.executor,
                max_batch=policy.max_batch,
                max_wait_seconds=policy.max_wait_seconds,
                incoming=lambda: self.preparing,
            )
            for model_id, classifier in registry.models.items()
        }

    def _predict_shared(
        self, classifier: OnnxCellClassifier, prepared: Sequence[PreparedUpload]
    ) -> list[Outcome]:
        """One micro-batch of several requests' images: plain answers (no TTA, no maps); each
        request puts its own id on its answer."""
        return predict_prepared(
            prepared, classifier, PredictOptions(), observe=self.observe_inference
        )

    def close(self) -> None:
        """Stop the worker threads and the decoders (the records are their owner's to close)."""
        self.executor.shutdown(wait=True, cancel_futures=True)
        for share in self.shares.values():
            share.close()
        if self.decoders is not None:
            self.decoders.close()

    async def aclose(self) -> None:
        for batcher in self.batchers.values():
            await batcher.close()
        self.close()

    async def run(self, function: Callable[[], T]) -> T:
        """Run blocking work on the service's pool, off the event loop, in this context."""
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, partial(context.run, function)
        )

    @asynccontextmanager
    async def _place(self, share: WorkShare | None, budget: WorkBudget) -> AsyncIterator[None]:
        """A heavy request's place in its share (waiting at most its budget); a plain one is
        counted, so that a lone one skips the batcher."""
        if share is not None:
            async with share.held(budget.seconds_left(math.inf)):
                yield
            return
        self.plain_in_flight += 1
        try:
            yield
        finally:
            self.plain_in_flight -= 1

    def _submit(
        self, outcomes: Sequence[Outcome], sample: SampleEntry | None, *, answered: bool = True
    ) -> Pending | None:
        """Hand the answered images' record to the records' writer (never waits); without
        records (a service built alone, for a benchmark) nothing is recorded."""
        if self.records is None:
            return None
        predictions = [outcome for outcome in outcomes if isinstance(outcome, Prediction)]
        return self.records.submit(records_of(predictions, sample, answered=answered))

    async def _recorded(self, outcomes: Sequence[Outcome], pending: Pending | None) -> None:
        """The one durable wait: the answers go out once their record is durable (see
        app/records/pending_records.py), joined to their sample; else RecordsUnavailableError
        (503), or the sample's SampleStateError (409), and the record says not answered."""
        if pending is None:
            return
        waiting = asyncio.wrap_future(pending.recorded)
        try:
            done, _ = await asyncio.wait({waiting}, timeout=RECORD_WAIT_SECONDS)
            if not done and self.records is not None and self.records.abandon(pending):
                raise RecordsUnavailableError(NOT_RECORDED_IN_TIME)
            repeats = await waiting  # a sample's one attempt under way ends shortly
        except asyncio.CancelledError:
            # The client left (app/web/client_watch.py): nothing is answered, so the record
            # says so and, unless its one attempt is already under way, joins no sample.
            if self.records is not None:
                self.records.unanswered(pending)
            raise
        except RecordsUnavailableError as error:
            if self.records is not None:
                self.records.abandon(pending)
            raise RecordsUnavailableError(
                f"the answer could not be recorded ({error}); nothing was answered: retry"
            ) from error
        sample_id = pending.records[0].sample_id if pending.joins_sample else None
        if sample_id is not None:
            predictions = [outcome for outcome in outcomes if isinstance(outcome, Prediction)]
            joined(predictions, sample_id, repeats)

    async def predict(
        self,
        upload: Upload,
        *,
        model_id: str | None = None,
        request_id: str = "",
        views: bool = False,
        tta: bool | None = None,
        explain: bool = False,
        budget: WorkBudget | None = None,
        sample: SampleEntry | None = None,
    ) -> Prediction:
        """One image, or RefusedError; an unknown model or a map the model cannot draw is
        refused before any work, and before admission (the answer would not change by
        waiting). With `sample`, the answered image joins it."""
        budget = budget or WorkBudget()
        classifier = self.registry.get(model_id)
        if explain and not classifier.explains:
            raise ExplanationUnavailableError(NO_GRADCAM_GRAPH)
        options = PredictOptions(
            tta=tta_for(classifier, tta), explain=explain, request_id=request_id
        )
        share = self.shares.get(kind_of(upload.data, explain=explain, tta=options.tta))
        with self.in_flight.admitted():
            async with self._place(share, budget):
                outcome = await self._answer(upload, classifier, options, share, views, budget)
            await self._recorded([outcome], self._submit([outcome], sample))
            return outcome

    async def _answer(
        self,
        upload: Upload,
        classifier: OnnxCellClassifier,
        options: PredictOptions,
        share: WorkShare | None,
        views: bool,
        budget: WorkBudget,
    ) -> Prediction:
        prepare_upload = partial(
            prepare,
            upload,
            classifier,
            self.limits,
            views=views,
            budget=budget,
            decoders=self.decoders,
        )
        if share is not None:
            prepared = await share.run(prepare_upload)
        else:
            self.preparing += 1
            try:
                prepared = await self.run(prepare_upload)
            finally:
                self.preparing -= 1
        if share is not None or self.plain_in_flight == 1:
            # A heavy kind answers on its own share's threads (already a batch of its own
            # with TTA, needing the map with explain); a plain request with no other to
            # share a batch with skips the batcher's hop. Answered on the worker too:
            # drawing an explanation takes milliseconds the event loop owes every client.
            run = share.run if share is not None else self.run
            (outcome,) = await run(
                partial(
                    predict_prepared,
                    [prepared],
                    classifier,
                    options,
                    budget=budget,
                    observe=self.observe_inference,
                )
            )
        else:
            outcome = await self.batchers[classifier.manifest.id].submit(prepared)
        if isinstance(outcome, Refusal):  # not made by inference; kept for the type
            raise RefusedError(outcome.kind, outcome.reason)
        outcome.request_id = options.request_id
        return outcome

    async def predict_batch(
        self,
        uploads: Sequence[Upload],
        *,
        model_id: str | None = None,
        request_id: str = "",
        tta: bool | None = None,
        views: bool = False,
        explain: bool = False,
        budget: WorkBudget | None = None,
        sample: SampleEntry | None = None,
    ) -> list[Outcome]:
        """Each upload's prediction or refusal; with `sample`, the answered images join it."""
        classifier = self.registry.get(model_id)
        options = PredictOptions(
            tta=tta_for(classifier, tta), explain=explain, request_id=request_id
        )

        def predict_and_submit() -> tuple[list[Outcome], Pending | None]:
            # Submitted on the worker: the work done is recorded even if the client has gone
            # by the time it ends, as not answered (and joining no sample).
            try:
                outcomes = predict_uploads(
                    uploads,
                    classifier,
                    self.limits,
                    options,
                    views=views,
                    budget=budget,
                    decoders=self.decoders,
                    observe=self.observe_inference,
                )
            finally:
                # A batch's decoded images, tensors and maps are garbage now: give the pages
                # back on this worker, so the resident size returns near its idle level.
                release_free_memory()
            gone = budget is not None and budget.is_client_gone
            return outcomes, self._submit(outcomes, sample, answered=not gone)

        # A batch holds its in-flight place while it waits for a batch slot, as every request
        # does from its admission; batches never hold every worker: single images keep one.
        with self.in_flight.admitted():
            async with self.batch_slots:
                outcomes, pending = await self.run(predict_and_submit)
                await self._recorded(outcomes, pending)
                return outcomes
