import csv

import pytest

from app.cli.predict import folder_sample_id, main


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
    assert rows[-1]["error"].startswith("unreadable: ")
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
    from app.cli.predict import parse_arguments

    folder = tmp_path / "cells"
    folder.mkdir()
    local = parse_arguments(["--ray", str(folder), "--out", "r.csv"])
    assert (local.ray, local.paths) == ("local", [folder])
    cluster = parse_arguments(["--ray", "ray://head:10001", str(folder), "--out", "r.csv"])
    assert (cluster.ray, cluster.paths) == ("ray://head:10001", [folder])
    assert parse_arguments([str(folder), "--out", "r.csv"]).ray is None


def test_each_folder_is_a_sample_and_the_samples_get_their_blast_share(cnmc_root, tmp_path, capsys):
    from app.core.manifest import Evaluation, load_manifest, write_manifest
    from app.core.model_registry import record_model
    from tests.conftest import write_mean_brightness_model

    store = tmp_path / "store"
    model_dir = write_mean_brightness_model(store / "brightness")
    evaluation = Evaluation(
        protocol="out-of-fold predictions of a test cross-validation, at the served threshold",
        metrics={"threshold": 0.5, "confusion_matrix": [[750, 250], [200, 800]]},
    )
    card = load_manifest(model_dir)
    write_manifest(card.model_copy(update={"evaluations": [evaluation]}), model_dir)
    record_model(store, model_dir, default=True)
    single = cnmc_root / "training_data/fold_1/all/UID_16_11_1_all.png"
    out, samples_out = tmp_path / "results.csv", tmp_path / "samples.csv"
    arguments = ["--out", str(out), "--model-store", str(store), "--samples-out", str(samples_out)]
    folders = [cnmc_root / "training_data/fold_1/hem", cnmc_root / "training_data/fold_1/all"]
    assert main([*map(str, folders), str(single), *arguments]) == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert {r["sample_id"] for r in rows[:-1]} == {"hem", "all"}
    assert rows[-1]["sample_id"] == ""  # a file given alone belongs to no sample
    samples = {r["sample_id"]: r for r in csv.DictReader(samples_out.read_text().splitlines())}
    assert set(samples) == {"hem", "all"}
    for name, sample in samples.items():
        cells = [r for r in rows[:-1] if r["sample_id"] == name]
        assessable = [r for r in cells if r["assessable"] == "true"]
        assert int(sample["n_cells"]) == len(cells)
        assert int(sample["n_assessable"]) == len(assessable)
        called_all = sum(r["label"] == "ALL" for r in assessable)
        assert float(sample["blast_like_share_observed"]) == round(called_all / len(assessable), 4)
        low, high = float(sample["ci95_low"]), float(sample["ci95_high"])
        assert 0 <= low <= float(sample["blast_like_share_corrected"]) <= high <= 1
        assert sample["sensitivity"] == "0.8000"
    assert main([str(folders[0]), *arguments, "--sample-id", "LAB-1"]) == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert {r["sample_id"] for r in rows} == {"LAB-1"}
    assert f"samples in {samples_out}" in capsys.readouterr().err
    # the same image twice in a sample is one cell of it
    twice = tmp_path / "twice"
    twice.mkdir()
    for name in ("a.png", "b.png"):
        (twice / name).write_bytes(single.read_bytes())
    assert main([str(twice), *arguments]) == 0
    (sample,) = list(csv.DictReader(samples_out.read_text().splitlines()))
    assert sample["n_cells"] == "1"


@pytest.mark.parametrize("sample_id", ["Jane Doe", "Jane.Doe.1962-03-14"])
def test_a_bad_sample_id_is_refused(cnmc_root, tmp_path, model_store, capsys, sample_id):
    with pytest.raises(SystemExit):
        main([str(cnmc_root), "--out", str(tmp_path / "r.csv"), "--sample-id", sample_id])
    assert "lab numbers only" in capsys.readouterr().err


def test_a_name_like_sample_id_without_a_date_is_scored_with_a_warning(
    cnmc_root, tmp_path, model_store, capsys
):
    out = tmp_path / "r.csv"
    folder = cnmc_root / "training_data/fold_1/hem"
    arguments = [str(folder), "--out", str(out), "--model-store", str(model_store)]
    assert main([*arguments, "--sample-id", "SMITH_JOHN_MRN4471234"]) == 0
    assert "warning: --sample-id: the sample id has letters that could be" in (
        capsys.readouterr().err
    )


def test_a_folder_named_like_a_patient_is_no_sample_id(cnmc_root, tmp_path, model_store, capsys):
    """The folder's name used to become the sample id, whatever it was; the server's policy
    refuses it here too, and nothing is scored."""
    import shutil

    folder = tmp_path / "Jane.Doe.1962-03-14"
    shutil.copytree(cnmc_root / "training_data/fold_1/hem", folder)
    out = tmp_path / "r.csv"
    assert main([str(folder), "--out", str(out), "--model-store", str(model_store)]) == 2
    error = capsys.readouterr().err
    assert "lab numbers only" in error
    assert "--sample-id" in error
    assert not out.exists()
    assert main([str(folder), "--out", str(out), "--model-store", str(model_store),
                 "--sample-id", "LAB-2026-12-07-3"]) == 0  # fmt: skip


def test_a_folder_name_becomes_a_valid_sample_id(tmp_path):
    folder = tmp_path / "patient 12 (bone marrow)"
    folder.mkdir()
    assert folder_sample_id(folder) == "patient-12--bone-marrow-"


def test_the_command_runs_as_a_module(cnmc_root, model_store, tmp_path):
    """`python -m app.cli.predict`, as scripts/predict and the README run it."""
    import subprocess
    import sys

    out = tmp_path / "r.csv"
    folder = cnmc_root / "training_data/fold_1/hem"
    command = [sys.executable, "-m", "app.cli.predict", str(folder), "--out", str(out)]
    done = subprocess.run(
        [*command, "--model-store", str(model_store)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == 1 + 9  # a header and the folder's 9 cells


def test_int8_says_what_it_used(cnmc_root, tmp_path, model_store, capsys):
    out = tmp_path / "r.csv"
    cell = cnmc_root / "training_data/fold_1/all/UID_16_11_1_all.png"
    assert main([str(cell), "--out", str(out), "--model-store", str(model_store), "--int8"]) == 0
    assert "brightness: float32 graph (it ships no int8 graph)" in capsys.readouterr().err


def test_help_names_the_script_and_describes_every_option():
    from app.cli.predict import build_parser

    parser = build_parser()
    assert parser.format_usage().startswith("usage: ./scripts/predict ")
    assert "python -m" not in parser.format_help()
    for action in parser._actions:
        assert action.help, action.option_strings or action.dest
