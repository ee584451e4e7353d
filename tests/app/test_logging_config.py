import json
import logging

from app.logging_config import JsonFormatter, current_request_id, logging_config


def test_records_are_one_json_object_with_the_request_id():
    record = logging.makeLogRecord(
        {
            "name": "leukolens.access",
            "levelname": "INFO",
            "msg": "GET %s",
            "args": ("/x",),
            "status": 200,
        }
    )
    token = current_request_id.set("abc123")
    try:
        line = JsonFormatter().format(record)
    finally:
        current_request_id.reset(token)
    payload = json.loads(line)
    assert payload["message"] == "GET /x"
    assert payload["request_id"] == "abc123"
    assert payload["status"] == 200
    assert payload["level"] == "info"


def test_access_log_lines_carry_the_request_id(client, caplog):
    with caplog.at_level(logging.INFO, logger="leukolens.access"):
        response = client.get("/healthz", headers={"X-Request-ID": "trace-1"})
    assert response.status_code == 200
    record = next(r for r in caplog.records if r.name == "leukolens.access")
    payload = json.loads(JsonFormatter().format(record))
    assert payload["route"] == "/healthz"
    assert payload["status"] == 200
    assert payload["request_id"] == response.headers["x-request-id"] != "trace-1"
    assert payload["client_request_id"] == "trace-1"


def test_uvicorn_config_replaces_the_access_log():
    config = logging_config()
    assert config["loggers"]["uvicorn.access"]["handlers"] == []
    assert config["formatters"]["json"]["()"] is JsonFormatter
