"""The server's asynchronous side of prediction: admission, the worker pool, micro-batching and
the audit log, around the prediction path (app/inference/prediction_path.py).

Blocking work runs on a thread pool (OpenCV and onnxruntime release the GIL); concurrent
single-image requests share batched inferences; beyond a configured number of requests in
flight new work is refused at once (503) rather than queued without bound.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
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
from app.inference.work_shares import ServerBusyError, SharePolicy, WorkKind, WorkShare, kind_of
from app.records.audit_log import AuditLog, AuditRecord, AuditUnavailableError

T = TypeVar("T")
# How long an answer waits for its audit rows to be durable (journal fsync'd, or committed
# when the journal cannot take them) before it is refused instead.
RECORD_WAIT_SECONDS = 15.0
NOT_RECORDED_IN_TIME = (
    f"neither the journal nor the database took the rows in {RECORD_WAIT_SECONDS:g} s"
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
        max_in_flight: int | None = None,
        batching: BatchingPolicy | None = None,
        audit_log: AuditLog | None = None,
        observe_inference: InferenceObserver | None = None,
        decoders: DecoderProcesses | None = None,
        shares: SharePolicy | None = None,
    ) -> None:
        self.registry = registry
        self.limits = limits
        self.observe_inference = observe_inference
        self.decoders = decoders
        self.executor = ThreadPoolExecutor(worker_threads, thread_name_prefix="leukolens")
        self.max_in_flight = max_in_flight
        self.batch_slots = asyncio.Semaphore(max(1, worker_threads - 1))
        self.audit_log = audit_log
        self.in_flight = 0
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
        """Stop the worker threads and the decoders, and flush the audit log."""
        self.executor.shutdown(wait=True, cancel_futures=True)
        for share in self.shares.values():
            share.close()
        if self.decoders is not None:
            self.decoders.close()
        if self.audit_log is not None:
            self.audit_log.close()

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
    async def admitted(self) -> AsyncIterator[None]:
        """Hold a place in the queue, or refuse at once when it is full."""
        if self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
            raise ServerBusyError
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def _audit_records(self, outcomes: Sequence[Outcome]) -> list[AuditRecord]:
        """One audit row per answered image (hashes and results, never the image)."""
        now = time.time()
        return [
            AuditRecord(
                time=now,
                request_id=prediction.request_id,
                image_sha256=prediction.image_sha256 or "",
                model_id=prediction.model.id,
                model_version=prediction.model.version,
                probability_all=prediction.probability_all,
                label=prediction.side_of_threshold,
                latency_ms=prediction.timings_ms.total,
            )
            for prediction in outcomes
            if isinstance(prediction, Prediction)
        ]

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

    def audit(self, outcomes: Sequence[Outcome]) -> Future[None] | None:
        """Submit the answered images' audit rows; the future is done once the rows are
        durable (see AuditLog.submit)."""
        records = self._audit_records(outcomes)
        if self.audit_log is None or not records:
            return None
        submitted = self.audit_log.submit(records)
        # Without a journal nothing durable is waited for: the rows are written behind.
        return submitted if self.audit_log.journalled else None

    def unanswered(self, outcomes: Sequence[Outcome]) -> None:
        """These answers were refused after all (503, once their rows were kept): the audit
        records answers, not attempts, so their rows say `not_answered`."""
        records = self._audit_records(outcomes)
        if self.audit_log is not None and records:
            self.audit_log.mark_not_answered(records)

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
    ) -> Prediction:
        """One image, or RefusedError; an unknown model or a map the model cannot draw is
        refused before any work, and before admission (the answer would not change by
        waiting)."""
        budget = budget or WorkBudget()
        classifier = self.registry.get(model_id)
        if explain and not classifier.explains:
            raise ExplanationUnavailableError(NO_GRADCAM_GRAPH)
        options = PredictOptions(
            tta=tta_for(classifier, tta), explain=explain, request_id=request_id
        )
        share = self.shares.get(kind_of(upload.data, explain=explain, tta=options.tta))
        async with self.admitted(), self._place(share, budget):
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
            outcome.request_id = request_id
            recorded = self.audit([outcome])
            if recorded is not None:
                try:
                    await asyncio.wait_for(asyncio.wrap_future(recorded), RECORD_WAIT_SECONDS)
                except TimeoutError as error:
                    self.unanswered([outcome])
                    raise AuditUnavailableError(NOT_RECORDED_IN_TIME) from error
                except AuditUnavailableError:
                    self.unanswered([outcome])
                    raise
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
    ) -> list[Outcome]:
        classifier = self.registry.get(model_id)
        options = PredictOptions(
            tta=tta_for(classifier, tta), explain=explain, request_id=request_id
        )

        def predict_and_audit() -> list[Outcome]:
            # Audited on the worker: rows are written for work done even if the client has
            # gone by the time it ends.
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
            recorded = self.audit(outcomes)
            if recorded is not None:
                try:
                    recorded.result(RECORD_WAIT_SECONDS)
                except FutureTimeoutError as error:
                    self.unanswered(outcomes)
                    raise AuditUnavailableError(NOT_RECORDED_IN_TIME) from error
                except AuditUnavailableError:
                    self.unanswered(outcomes)
                    raise
            return outcomes

        # Batches never hold every worker: single images keep one, whatever the batches.
        async with self.batch_slots, self.admitted():
            return await self.run(predict_and_audit)
