"""What the prediction path gives back for each upload: an answer, or a typed refusal.

A refusal says what kind it is and why, never how a protocol would say it: the web layer turns
kinds into HTTP status codes (app/web/errors.py), the command line writes them into its CSV.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.core.domain.predictions import Prediction


class RefusalKind(StrEnum):
    EMPTY = "empty"
    """No bytes at all."""
    TOO_LARGE = "too_large"
    """Too many bytes, pixels, decoded bytes, JPEG scans or too large TIFF tiles."""
    UNSUPPORTED_TYPE = "unsupported_type"
    """A type the recipe does not read (GIF, WebP, a PDF, a declared text/plain...)."""
    UNREADABLE = "unreadable"
    """Claims to be a supported image but cannot be decoded (truncated, float samples...)."""
    OVER_BUDGET = "over_budget"
    """Decoding or preprocessing took longer than the time budget per file."""
    CLIENT_GONE = "client_gone"
    """The client left before the work was done."""
    BUSY = "busy"
    """No worker or decoder was free within the budget: the same file may succeed later."""


@dataclass(frozen=True)
class Refusal:
    kind: RefusalKind
    reason: str


class RefusedError(Exception):
    """A refusal raised where one upload is answered (a batch returns it in its place)."""

    def __init__(self, kind: RefusalKind, reason: str) -> None:
        super().__init__(reason)
        self.refusal = Refusal(kind, reason)

    @property
    def kind(self) -> RefusalKind:
        return self.refusal.kind

    @property
    def reason(self) -> str:
        return self.refusal.reason


Outcome = Prediction | Refusal
