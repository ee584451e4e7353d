import json
from pathlib import Path

import pytest

from training.cli import build_parser, main, parse_args
from training.fit.artifacts import CvDir, RunConfig, RunDir
from training.fit.config_flags import config_from_args
from training.fit.train_config import TrainConfig


def test_conflicting_validation_choices_are_refused():
    args = build_parser().parse_args(
        ["train", "--data", "d", "--out", "o", "--val-fold", "0", "--val-subjects", "H10"]
    )
    with pytest.raises(ValueError, match="choose one"):
        config_from_args(args)


def test_index_prints_counts(cnmc_root, capsys):
    assert main(["index", "--data", str(cnmc_root)]) == 0
    out = capsys.readouterr().out
    assert "18 images: ALL 9 (3 subjects), HEM 9 (3 subjects)" in out
    assert "H22" in out
    assert main(["index", "--data", str(cnmc_root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 18
    assert {row["subject"] for row in report["counts"]} == {"16", "23", "30", "H10", "H14", "H22"}


def test_bad_root_exits_2_with_the_reason(tmp_path, capsys):
    assert main(["index", "--data", str(tmp_path / "nowhere")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_evaluate_needs_data(tmp_path, capsys):
    assert main(["evaluate", "--model", str(tmp_path)]) == 2
    assert "give --data" in capsys.readouterr().err


def saved_run(tmp_path: Path, config: TrainConfig) -> Path:
    run = RunDir(tmp_path / "saved")
    run.path.mkdir()
    run.write_config(
        RunConfig(
            train=config,
            preprocessing=config.preprocess_config(),
            split=None,
            train_subjects={"16": 3},
            validation_subjects={},
        )
    )
    return run.config_file


def test_config_file_reruns_the_saved_config(tmp_path):
    config = TrainConfig(
        data=Path("/data/C-NMC"),
        out=tmp_path / "run",
        arch="convnext_pico",
        crop="bbox",
        val_subjects=["H10", "16"],
        augment=False,
        lr=3e-4,
    )
    saved = saved_run(tmp_path, config)
    again = ["train", "--config", str(saved), "--out", str(tmp_path / "run")]
    assert config_from_args(parse_args(again)) == config
    # timm's rule: the file gives the defaults, flags given beside it override them.
    args = parse_args(["train", "-c", str(saved), "--epochs", "3", "--out", str(tmp_path / "b")])
    assert config_from_args(args) == config.model_copy(update={"epochs": 3, "out": tmp_path / "b"})
    cv = CvDir(tmp_path / "cv")
    cv.path.mkdir()
    cv.write_config(config.model_copy(update={"val_subjects": None, "folds": 4}))
    rerun = config_from_args(
        parse_args(["cv", "--config", str(cv.config_file), "--out", str(tmp_path / "cv2")])
    )
    assert rerun.folds == 4
    assert rerun.val_subjects is None


def test_a_rerun_needs_its_own_out_and_no_flag_is_abbreviated(tmp_path, capsys):
    """`--config` alone once rewrote the saved run in place, and `--conf` was
    taken for `--config` by the subcommand while the file was never read."""
    saved = saved_run(tmp_path, TrainConfig(data=Path("/d"), out=tmp_path / "run", epochs=7))
    for words in (["train", "--config", str(saved)], ["train", "--conf", str(saved)]):
        with pytest.raises(SystemExit) as exit_info:
            parse_args([*words, "--data", "/d"] if "--conf" in words else words)
        assert exit_info.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_an_unreadable_config_file_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["train", "--config", str(tmp_path / "missing.json")])
    assert exit_info.value.code == 2
    assert "--config" in capsys.readouterr().err


def test_command_and_config_are_written_when_a_run_starts(cnmc_root, tmp_path, monkeypatch):
    """A run that fails (or is stopped) still says how it was started."""
    from training.fit import cross_validation

    def fail(*args, **kwargs):
        raise RuntimeError("stopped")

    monkeypatch.setattr(cross_validation, "train", fail)
    out = tmp_path / "cv"
    with pytest.raises(RuntimeError, match="stopped"):
        main(["cv", "--data", str(cnmc_root), "--out", str(out), "--epochs", "2"])
    assert (out / "command.txt").read_text().startswith("python -m training cv --data")
    assert "--epochs 2" in (out / "command.txt").read_text()
    rerun = ["cv", "--config", str(out / "cv_config.json"), "--out", str(out)]
    saved = config_from_args(parse_args(rerun))
    assert saved == TrainConfig(data=cnmc_root, out=out, epochs=2)


def test_population_weights_need_key_value_pairs(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["cv", "--data", "/d", "--out", "/o", "--population-weights", "external-prelim"]
        )
    assert "KEY=VALUE" in capsys.readouterr().err


def test_populations_table_of_the_baselines(cnmc_root, external_people_root, capsys):
    code = main(
        [
            "populations",
            "--data",
            str(cnmc_root),
            "--extra-data",
            str(external_people_root),
            "--baselines",
            "--resamples",
            "20",
        ]
    )
    table = capsys.readouterr().out
    assert code == 0
    assert "baseline: cell area" in table
    assert "| external-prelim |" in table


def test_populations_needs_data_for_baselines(capsys):
    assert main(["populations", "--baselines"]) == 2
    assert "--data" in capsys.readouterr().err


def test_index_of_the_preliminary_test_set_alone(external_people_root, capsys):
    prelim = external_people_root / "C-NMC_test_prelim_phase_data"
    labels = external_people_root / "C-NMC_test_prelim_phase_data_labels.csv"
    code = main(["index", "--test-images", str(prelim), "--test-csv", str(labels), "--json"])
    assert code == 2  # the CSV lists rows whose files are absent: said, not guessed
    assert "missing" in capsys.readouterr().err
