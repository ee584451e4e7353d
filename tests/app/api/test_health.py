def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_after_warm_up(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "models": ["brightness", "brightness-64"]}


def test_readyz_before_warm_up(client):
    client.app.state.engine.registry.warmed_up = False
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "starting"
