import time

from app.audit_log import AuditLog, AuditRecord


def record(when: float, request_id: str = "r1") -> AuditRecord:
    return AuditRecord(when, request_id, "ab" * 32, "m", "1", 0.7, "ALL", 12.5)


def test_records_are_written_in_the_background(tmp_path):
    log = AuditLog(tmp_path / "a.sqlite3", retention_days=30)
    log.submit([record(time.time(), "r1"), record(time.time(), "r2")]).result(timeout=10)
    assert [r.request_id for r in log.rows()] == ["r1", "r2"]
    log.close()


def test_old_records_are_pruned(tmp_path):
    log = AuditLog(tmp_path / "a.sqlite3", retention_days=1)
    log.submit([record(time.time() - 3 * 86_400, "old"), record(time.time(), "new")]).result(10)
    assert log.prune() == 1
    assert [r.request_id for r in log.rows()] == ["new"]
    log.close()


def test_a_failed_write_does_not_raise(tmp_path, caplog):
    log = AuditLog(tmp_path / "a.sqlite3", retention_days=1)
    log._connection.execute("DROP TABLE predictions")
    log.submit([record(time.time())]).result(timeout=10)  # no exception escapes
    assert "audit log write failed" in caplog.text
    log.close()


def test_predictions_are_audited_without_the_image(client, real_cell_png, settings):
    import hashlib
    import sqlite3

    response = client.post("/api/v1/predict", files={"file": ("patient-name.png", real_cell_png)})
    body = response.json()
    client.app.state.engine.audit_log._writer.submit(lambda: None).result(timeout=10)
    rows = client.app.state.engine.audit_log.rows()
    assert len(rows) == 1
    assert rows[0].request_id == body["request_id"]
    assert rows[0].image_sha256 == hashlib.sha256(real_cell_png).hexdigest()
    assert rows[0].probability_all == body["probability_all"]
    dump = "\n".join(sqlite3.connect(settings.audit_log_path).iterdump())
    assert "patient-name" not in dump


def test_a_broken_audit_log_never_fails_a_prediction(client, real_cell_png):
    audit = client.app.state.engine.audit_log
    audit._connection.execute("DROP TABLE predictions")
    response = client.post("/api/v1/predict", files={"file": ("c.png", real_cell_png)})
    assert response.status_code == 200
