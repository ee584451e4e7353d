import csv

from app.predict import main


def test_scores_files_and_folders_into_a_csv(cnmc_root, model_store, tmp_path, capsys):
    folder = cnmc_root / "training_data/fold_1/hem"
    single = cnmc_root / "training_data/fold_1/all/UID_16_11_1_all.png"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    out = tmp_path / "results.csv"
    code = main(
        [
            str(single),
            str(folder),
            str(broken),
            "--out",
            str(out),
            "--model-store",
            str(model_store),
            "--batch-size",
            "4",
        ]
    )
    assert code == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert len(rows) == 11
    assert rows[0]["filename"] == str(single)
    assert [r["status"] for r in rows] == ["ok"] * 10 + ["error"]
    assert all(r["model_id"] == "brightness" for r in rows[:10])
    assert rows[-1]["error"].startswith("400")
    assert "10 scored, 1 failed" in capsys.readouterr().err


def test_a_missing_path_is_an_error(tmp_path, model_store, capsys):
    assert (
        main(
            [
                str(tmp_path / "nope"),
                "--out",
                str(tmp_path / "r.csv"),
                "--model-store",
                str(model_store),
            ]
        )
        == 2
    )
    assert "no such file" in capsys.readouterr().err


def test_an_unknown_model_is_an_error(cnmc_root, tmp_path, model_store, capsys):
    assert (
        main(
            [
                str(cnmc_root),
                "--out",
                str(tmp_path / "r.csv"),
                "--model",
                "ghost",
                "--model-store",
                str(model_store),
            ]
        )
        == 2
    )
    assert "unknown model" in capsys.readouterr().err


def test_the_rows_do_not_depend_on_how_many_threads_prepare(cnmc_root, model_store, tmp_path):
    """Preparing on a pool while batches are scored must keep the files' order and answers."""
    tables = []
    for workers, batch in (("1", "16"), ("3", "1"), ("2", "5")):
        out = tmp_path / f"results-{workers}-{batch}.csv"
        argv = [str(cnmc_root), "--out", str(out), "--model-store", str(model_store)]
        assert main([*argv, "--workers", workers, "--batch-size", batch]) == 0
        rows = list(csv.DictReader(out.read_text().splitlines()))
        tables.append([(r["filename"], r["probability_all"], r["warnings"]) for r in rows])
    assert len(tables[0]) == 18
    assert tables[0] == tables[1] == tables[2]


def test_ray_takes_an_address_or_nothing_before_the_folders(tmp_path):
    from app.predict import parse_arguments

    folder = tmp_path / "cells"
    folder.mkdir()
    local = parse_arguments(["--ray", str(folder), "--out", "r.csv"])
    assert (local.ray, local.paths) == ("local", [folder])
    cluster = parse_arguments(["--ray", "ray://head:10001", str(folder), "--out", "r.csv"])
    assert (cluster.ray, cluster.paths) == ("ray://head:10001", [folder])
    assert parse_arguments([str(folder), "--out", "r.csv"]).ray is None
