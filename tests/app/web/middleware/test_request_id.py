def test_a_request_id_is_generated(client):
    first = client.get("/healthz").headers["x-request-id"]
    second = client.get("/healthz").headers["x-request-id"]
    assert len(first) == 32
    assert first != second


def test_the_server_id_is_the_key_and_a_sane_client_id_is_kept_beside_it(client):
    """Before, a client's X-Request-ID became the request id (and the audit key): two clients,
    or one client twice, could give two answers one id."""
    first = client.get("/healthz", headers={"X-Request-ID": "lab-42.run_7"}).headers
    second = client.get("/healthz", headers={"X-Request-ID": "lab-42.run_7"}).headers
    assert first["x-request-id"] != second["x-request-id"]
    assert len(first["x-request-id"]) == 32
    assert first["x-client-request-id"] == second["x-client-request-id"] == "lab-42.run_7"


def test_a_hostile_client_id_is_dropped(client):
    headers = client.get("/healthz", headers={"X-Request-ID": "bad id\r\nx"}).headers
    assert len(headers["x-request-id"]) == 32
    assert "x-client-request-id" not in headers
