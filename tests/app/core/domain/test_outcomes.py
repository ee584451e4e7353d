"""A refusal says its kind and why, whether it is returned in a batch or raised for one upload."""

from app.core.domain.outcomes import Refusal, RefusalKind, RefusedError


def test_a_raised_refusal_carries_the_same_refusal_a_batch_returns():
    error = RefusedError(RefusalKind.TOO_LARGE, "over 16 MB")
    assert error.refusal == Refusal(RefusalKind.TOO_LARGE, "over 16 MB")
    assert (error.kind, error.reason, str(error)) == ("too_large", "over 16 MB", "over 16 MB")
