import json

from app.records.sample_digest import (
    SampleRows,
    canonical_json,
    changed_rows,
    content_sha256,
    live_cells,
    manifest_form,
    row_digest,
    row_manifest,
)

# An upload recorded before uploads had owners (as migration 0005 leaves earlier rows).
UNRECORDED = {"uploader": "", "uploader_source": "unrecorded"}
DR_A = {"uploader": "Dr A", "uploader_source": "reviewer_key"}


def cell(row_id: int, sha: str, client_request_id: str = "", owner: dict = DR_A) -> dict:
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
        **owner,
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


def withdrawal(row_id: int, client_request_id: str, owner: dict = DR_A, through: int | None = None):
    return {
        "id": row_id,
        "time": 1_765_000_050.0,
        "sample_id": "S-1",
        "client_request_id": client_request_id,
        **owner,
        "through_id": through,
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
        [withdrawal(1, "upload-2", through=2)],
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


def test_the_signed_content_names_whose_each_upload_is_and_never_the_idempotency_key():
    a = "a" * 64
    signed = rows([cell(1, a)], [decision(2, a, "HEM")])
    by_bob = rows([cell(1, a, owner={"uploader": "Dr B", "uploader_source": "reviewer_key"})])
    by_bob.tables["review_decisions"] = signed.of("review_decisions")
    assert content_sha256("S-1", by_bob) != content_sha256("S-1", signed)
    assert row_digest("sample_predictions", by_bob.of("sample_predictions")[0]) != row_digest(
        "sample_predictions", signed.of("sample_predictions")[0]
    )
    keyed = {**decision(2, a, "HEM"), "idempotency_key": "k-1", "request_fingerprint": "f" * 64}
    rekeyed = {**keyed, "idempotency_key": "k-2", "request_fingerprint": "0" * 64}
    assert row_digest("review_decisions", keyed) == row_digest("review_decisions", rekeyed)
    # Form 1, signed before uploads had owners, never saw them.
    assert content_sha256("S-1", by_bob, 1) == content_sha256("S-1", signed, 1)


def test_a_withdrawal_covers_its_owners_rows_up_to_its_last_as_the_api_reads_them():
    a, b = "a" * 64, "b" * 64
    mine = rows([cell(1, a), cell(2, b, "upload-2")])
    withdrawn = rows(
        [cell(1, a), cell(2, b, "upload-2")], (), [withdrawal(1, "upload-2", through=2)]
    )
    assert set(live_cells(withdrawn)) == {a}
    assert content_sha256("S-1", withdrawn) != content_sha256("S-1", mine)
    for not_covering in (
        withdrawal(1, "upload-2", owner={"uploader": "Dr B", "uploader_source": "reviewer_key"}),
        withdrawal(1, "upload-2", through=1),  # filed before row 2 was recorded
    ):
        others = rows([cell(1, a), cell(2, b, "upload-2")], (), [not_covering])
        assert set(live_cells(others)) == {a, b}
        assert content_sha256("S-1", others) != content_sha256("S-1", withdrawn)


def test_a_sign_off_made_before_uploads_had_owners_still_verifies():
    """Digests written by the first signed form (before owners were recorded) as it computed
    them, over rows as migration 0005 leaves them: they still match, and a change still shows."""
    a, b = "a" * 64, "b" * 64
    then = rows(
        [cell(1, a, owner=UNRECORDED), cell(2, b, "upload-2", owner=UNRECORDED)],
        [decision(3, a, "HEM")],
        [withdrawal(1, "upload-2", owner=UNRECORDED)],
    )
    manifest = json.dumps(
        {
            "max_ids": {"review_decisions": 3, "sample_predictions": 2, "sample_withdrawals": 1},
            "rows": {
                "review_decisions": {
                    "3": "979c45719b3d373ef157c0883c7abd4833e5cd70a1419dc6f9d3756e8988aab3"
                },
                "sample_predictions": {
                    "1": "385e18572507fa780f353142a7cc1cebbf338aee824b5795ced361249084f35b",
                    "2": "93700d2c2955dcda9bfde16a352b632214eacb472ec34b48c89e31523d14fed4",
                },
                "sample_withdrawals": {
                    "1": "583ec9353b144ba4b1119a2e18ba253f8784fd510dfab3e01a5b77245e713025"
                },
            },
        }
    )
    assert manifest_form(manifest) == 1
    assert content_sha256("S-1", then, 1) == (
        "9fa6f880c2c04943dde39ad3eb02cbd3b17922b2d0cb6bcb353e9777fcb3cc1d"
    )
    assert changed_rows(manifest, then, then, latest=True) == []
    rewritten = rows(
        then.of("sample_predictions"), [decision(3, a, "ALL")], then.of("sample_withdrawals")
    )
    (change,) = changed_rows(manifest, rewritten, rewritten, latest=True)
    assert (change.table, change.row_id, change.change) == ("review_decisions", 3, "changed")
    assert manifest_form(row_manifest(then, {})) == 2
