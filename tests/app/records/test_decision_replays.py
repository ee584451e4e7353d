"""A decision posted twice (a retry after a timeout) used to be stored twice. Under
an Idempotency-Key it is now stored once, and the key cannot be reused for another decision."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from app.records.decision_replays import IdempotencyConflictError, fingerprint
from tests.app.records.test_review_records import SHA_A, SHA_B, prediction, review


@pytest.fixture
def records(records):
    """Each engine's records, holding sample S-1's two cells."""
    records.add_predictions(
        "S-1", [prediction(SHA_A, 0.9, "suggests_all"), prediction(SHA_B, 0.2, "suggests_normal")]
    )
    return records


def test_the_same_key_and_decision_answer_the_first_record_and_store_nothing(records):
    first, replayed = records.add_decision_once(review(SHA_A, "ALL"), idempotency_key="k-1")
    again, replayed_again = records.add_decision_once(review(SHA_A, "ALL"), idempotency_key="k-1")
    assert (replayed, replayed_again) == (False, True)
    assert again == first
    assert len(records.sample("S-1").decisions) == 1


@pytest.mark.parametrize(
    ("change", "source"),
    [
        ({"decision": "HEM"}, "free_text"),
        ({"image_sha256": SHA_B}, "free_text"),
        ({"comment": "on second thoughts"}, "free_text"),
        ({"reviewer": "Dr B"}, "free_text"),
        ({}, "reviewer_key"),  # the same words, but now under an authenticated name
    ],
)
def test_the_same_key_for_another_decision_is_a_conflict(records, change, source):
    records.add_decision_once(review(SHA_A, "ALL"), idempotency_key="k-1")
    with pytest.raises(IdempotencyConflictError, match="another decision"):
        records.add_decision_once(
            review(SHA_A, **{"decision": "ALL", **change}),
            reviewer_source=source,
            idempotency_key="k-1",
        )
    assert len(records.sample("S-1").decisions) == 1


def test_decisions_without_a_key_or_with_new_keys_are_each_stored(records):
    records.add_decision(review(SHA_A, "ALL"))
    records.add_decision(review(SHA_A, "ALL"))
    records.add_decision_once(review(SHA_A, "ALL"), idempotency_key="k-1")
    records.add_decision_once(review(SHA_A, "ALL"), idempotency_key="k-2")
    assert len(records.sample("S-1").decisions) == 4


def test_retries_racing_each_other_store_one_decision(records):
    with ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(
                lambda _: records.add_decision_once(review(SHA_A, "HEM"), idempotency_key="k-x"),
                range(12),
            )
        )
    assert len({record.id for record, _ in answers}) == 1
    assert sum(not replayed for _, replayed in answers) == 1
    assert len(records.sample("S-1").decisions) == 1


def test_the_fingerprint_covers_every_recorded_field():
    fields = {
        "sample_id": "S-1",
        "request_id": "r1",
        "image_sha256": SHA_A,
        "decision": "ALL",
        "reviewer": "Dr A",
        "comment": "",
        "reviewer_source": "free_text",
    }
    seen = {fingerprint(fields)}
    for name in fields:
        seen.add(fingerprint({**fields, name: fields[name] + "?"}))
    assert len(seen) == 1 + len(fields)
