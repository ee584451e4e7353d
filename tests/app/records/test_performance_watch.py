"""The watch counts the figures again only when a record arrived."""

from app.core.manifest import load_manifest
from app.records.performance_watch import PerformanceWatch
from app.records.review_records import ReviewRecords
from tests.app.records.test_performance_read import answer, decide
from tests.conftest import write_mean_brightness_model


def test_figures_are_published_again_only_after_a_new_record(tmp_path):
    records = ReviewRecords(tmp_path / "audit.sqlite3")
    manifest = load_manifest(write_mean_brightness_model(tmp_path / "m"))
    published = []
    watch = PerformanceWatch(records.engine, [manifest], published.append, every_seconds=60)
    assert watch.refresh_if_changed() is True  # the first look counts
    assert watch.refresh_if_changed() is False
    records.add_predictions("S-1", [answer(1, 0.9)])
    assert watch.refresh_if_changed() is True
    decide(records, "S-1", 1, "ALL")
    assert watch.refresh_if_changed() is True
    assert watch.refresh_if_changed() is False
    assert [figures.cells for figures in published] == [0, 0, 1]
    assert published[-1].model.id == "m"
    watch.start()
    watch.stop()
    records.close()
