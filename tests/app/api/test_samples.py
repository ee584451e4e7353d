import hashlib

import numpy as np


def test_a_sample_lists_its_images_and_counts(client, real_cell_png, encode_png):
    blank = encode_png(np.zeros((64, 64, 3), np.uint8))  # no cell: not assessable
    response = client.post(
        "/api/v1/predict/batch?sample_id=LAB-42",
        files=[("files", ("a.png", real_cell_png)), ("files", ("b.png", blank))],
    )
    results = response.json()["results"]
    assert results[1]["prediction"]["assessable"] is False
    assert results[1]["prediction"]["state"] == "not_assessable"
    single = client.post(
        "/api/v1/predict?sample_id=LAB-42", files={"file": ("c.png", real_cell_png)}
    ).json()
    client.post("/api/v1/predict/batch", files=[("files", ("d.png", real_cell_png))])  # no sample
    sample = client.get("/api/v1/samples/LAB-42").json()
    assert sample["sample_id"] == "LAB-42"
    assert [p["image_sha256"] for p in sample["predictions"]] == [
        hashlib.sha256(real_cell_png).hexdigest(),
        hashlib.sha256(blank).hexdigest(),
        hashlib.sha256(real_cell_png).hexdigest(),
    ]
    assert sample["predictions"][2]["request_id"] == single["request_id"]
    counts = sample["counts"]
    assert counts["images"] == 3
    assert counts["by_state"]["not_assessable"] == 1
    assert sum(counts["by_state"].values()) == 3
    assert counts["decided"] == 0
    assessable_all = sum(1 for p in sample["predictions"] if p["state"] == "suggests_all")
    assert counts["all_like_share_of_assessable"] == assessable_all / 2
    assert "filename" not in str(sample)


def test_an_unknown_sample_is_404(client):
    response = client.get("/api/v1/samples/never-seen")
    assert response.status_code == 404
    assert "never-seen" in response.json()["detail"]


def test_a_bad_sample_id_is_422(client, real_cell_png):
    response = client.post(
        "/api/v1/predict?sample_id=%20x", files={"file": ("c.png", real_cell_png)}
    )
    assert response.status_code == 422
