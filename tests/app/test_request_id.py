def test_a_request_id_is_generated(client):
    first = client.get("/healthz").headers["x-request-id"]
    second = client.get("/healthz").headers["x-request-id"]
    assert len(first) == 32
    assert first != second


def test_a_sane_client_id_is_kept_and_a_hostile_one_replaced(client):
    assert (
        client.get("/healthz", headers={"X-Request-ID": "lab-42.run_7"}).headers["x-request-id"]
        == "lab-42.run_7"
    )
    replaced = client.get("/healthz", headers={"X-Request-ID": "bad id\r\nx"}).headers[
        "x-request-id"
    ]
    assert replaced != "bad id\r\nx"
    assert len(replaced) == 32
