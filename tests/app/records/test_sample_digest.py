import json

from app.records.sample_digest import (
    SampleRows,
    canonical_json,
    changed_rows,
    content_sha256,
    row_digest,
    row_manifest,
)


def cell(row_id: int, sha: str, client_request_id: str = "") -> dict:
    return {
        "id": row_id,
        "time": 1_765_000_000.25,
        "sample_id": "S-1",
        "request_id": f"r{row_id}",
        "image_sha256": sha,
        "model_id": "m",
        "model_version": "1",
        "probability_all": 0.75,
        "label": "ALL",
        "state": "suggests_all",
        "assessable": 1,
        "client_request_id": client_request_id,
        "repeat_of": None,
        "threshold": 0.5,
        "tta": 0,
        "warnings": "",
    }


def decision(row_id: int, sha: str, what: str, amendment: str | None = None) -> dict:
    return {
        "id": row_id,
        "time": 1_765_000_100.5,
        "sample_id": "S-1",
        "request_id": "r1",
        "image_sha256": sha,
        "decision": what,
        "reviewer": "Dr A",
        "reviewer_source": "free_text",
        "comment": "",
        "amendment": amendment,
    }


def rows(cells, decisions=(), withdrawals=()) -> SampleRows:
    made = SampleRows()
    made.tables["sample_predictions"] = list(cells)
    made.tables["review_decisions"] = list(decisions)
    made.tables["sample_withdrawals"] = list(withdrawals)
    return made


def test_the_canonical_json_is_sorted_and_compact():
    assert canonical_json({"b": 1, "a": [1.5, None, "é"]}) == '{"a":[1.5,null,"é"],"b":1}'.encode()


def test_the_content_is_the_latest_decision_per_live_cell_whatever_the_row_order():
    a, b = "a" * 64, "b" * 64
    signed = rows([cell(1, a), cell(2, b)], [decision(1, a, "HEM"), decision(2, a, "ALL")])
    reordered = rows([cell(2, b), cell(1, a)], [decision(1, a, "HEM"), decision(2, a, "ALL")])
    assert content_sha256("S-1", signed) == content_sha256("S-1", reordered)
    superseded = rows([cell(1, a), cell(2, b)], [decision(1, a, "ALL"), decision(2, a, "ALL")])
    assert content_sha256("S-1", superseded) == content_sha256("S-1", signed)  # only the latest
    changed = rows([cell(1, a), cell(2, b)], [decision(1, a, "HEM"), decision(2, a, "HEM")])
    assert content_sha256("S-1", changed) != content_sha256("S-1", signed)
    withdrawn = rows(
        [cell(1, a), cell(2, b, "upload-2")],
        [decision(1, a, "HEM"), decision(2, a, "ALL")],
        [{"id": 1, "time": 1.0, "sample_id": "S-1", "client_request_id": "upload-2"}],
    )
    assert content_sha256("S-1", withdrawn) != content_sha256("S-1", signed)
    assert content_sha256("S-2", signed) != content_sha256("S-1", signed)


def test_a_row_digest_covers_its_signed_columns_only():
    row = decision(1, "a" * 64, "HEM")
    assert row_digest("review_decisions", row) == row_digest(
        "review_decisions", {**row, "a_column_a_later_migration_adds": "x"}
    )
    for column, value in (("decision", "ALL"), ("reviewer", "Mallory"), ("time", 2.0)):
        assert row_digest("review_decisions", {**row, column: value}) != row_digest(
            "review_decisions", row
        )


def test_changed_deleted_and_slipped_in_rows_are_named():
    a, b = "a" * 64, "b" * 64
    signed = rows([cell(1, a), cell(2, b)], [decision(3, a, "HEM"), decision(4, b, "HEM")])
    max_ids = {"sample_predictions": 2, "review_decisions": 5, "sample_withdrawals": 0}
    manifest = row_manifest(signed, max_ids)
    assert set(json.loads(manifest)["rows"]["review_decisions"]) == {"3", "4"}
    assert changed_rows(manifest, signed, signed, latest=True) == []

    rewritten = rows([cell(1, a), cell(2, b)], [decision(3, a, "ALL"), decision(4, b, "HEM")])
    (change,) = changed_rows(manifest, rewritten, rewritten, latest=True)
    assert (change.table, change.row_id, change.change, change.image_sha256) == (
        "review_decisions",
        3,
        "changed",
        a,
    )
    gone = rows([cell(1, a)], [decision(3, a, "HEM"), decision(4, b, "HEM")])
    (change,) = changed_rows(manifest, gone, gone, latest=True)
    assert (change.table, change.row_id, change.change) == ("sample_predictions", 2, "deleted")
    # A row under the table's highest id when signed, yet not signed: slipped into the past.
    back_dated = rows(
        signed.of("sample_predictions"), [*signed.of("review_decisions"), decision(5, b, "ALL")]
    )
    (change,) = changed_rows(manifest, signed, back_dated, latest=False)
    assert (change.row_id, change.change) == (5, "inserted")
    # After the latest sign-off only a decision with an amendment may come.
    later = [*signed.of("review_decisions"), decision(6, b, "ALL"), decision(7, a, "ALL", "why")]
    after = rows(signed.of("sample_predictions"), later)
    assert [(c.row_id, c.change) for c in changed_rows(manifest, signed, after, latest=True)] == [
        (6, "inserted")
    ]
    assert changed_rows(manifest, signed, after, latest=False) == []  # a later sign-off's
