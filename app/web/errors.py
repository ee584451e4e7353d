"""Domain errors and refusals become HTTP answers here, once, whichever route raised them.

`STATUS_FOR_REFUSAL` is the one mapping from a refusal's kind to its HTTP status code.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.core.classifier import ExplanationUnavailableError
from app.core.domain.outcomes import Refusal, RefusalKind, RefusedError
from app.core.model_registry import UnknownModelError
from app.inference.work_shares import ServerBusyError
from app.records.records_errors import RecordsUnavailableError
from app.records.sign_off import SampleStateError, UnknownSampleError
from app.web.middleware.refusals import BUSY, RETRY_AFTER_SECONDS

CLIENT_CLOSED_REQUEST = 499  # nginx's code: nobody is left to read it
STATUS_FOR_REFUSAL: dict[RefusalKind, int] = {
    RefusalKind.EMPTY: 400,
    RefusalKind.UNREADABLE: 400,
    RefusalKind.TOO_LARGE: 413,
    RefusalKind.OVER_BUDGET: 413,
    RefusalKind.UNSUPPORTED_TYPE: 415,
    RefusalKind.CLIENT_GONE: CLIENT_CLOSED_REQUEST,
    RefusalKind.BUSY: 503,
}


def status_for(refusal: Refusal) -> int:
    return STATUS_FOR_REFUSAL[refusal.kind]


def as_status_and_reason(refusal: Refusal) -> str:
    """A refusal in a CSV the API writes: its status code and reason, as the JSON says them."""
    return f"{status_for(refusal)}: {refusal.reason}"


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RecordsUnavailableError)
    async def records_unavailable(_: Request, error: RecordsUnavailableError) -> JSONResponse:
        # Whatever could not be recorded (a prediction, a decision, a withdrawal, a sign-off)
        # is said, never answered as if it were kept: the records are the lab's.
        return JSONResponse({"detail": str(error)}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(SampleStateError)
    async def sample_state(_: Request, error: SampleStateError) -> JSONResponse:
        # Where the sample is in its life cycle (signed off, undecided cells) forbids this.
        return JSONResponse({"detail": str(error)}, status_code=409)

    @app.exception_handler(UnknownSampleError)
    async def unknown_sample(_: Request, error: UnknownSampleError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(ServerBusyError)
    async def server_busy(_: Request, error: ServerBusyError) -> JSONResponse:
        return JSONResponse(
            {"detail": BUSY},
            status_code=503,
            headers={"Retry-After": str(error.retry_after_seconds)},
        )

    @app.exception_handler(RefusedError)
    async def refused(_: Request, error: RefusedError) -> JSONResponse:
        # Busy: the same request may be answered shortly (a free worker, a free place).
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)} if error.kind is RefusalKind.BUSY else {}
        return JSONResponse(
            {"detail": error.reason}, status_code=status_for(error.refusal), headers=retry
        )

    # A model id is a parameter of the request: one the store lacks is a 422 like any other
    # bad parameter (routes whose path names the model answer 404 themselves).
    @app.exception_handler(UnknownModelError)
    @app.exception_handler(ExplanationUnavailableError)
    async def bad_model_parameter(_: Request, error: LookupError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=422)
