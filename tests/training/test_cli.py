import json
import shlex
from pathlib import Path

import pytest

from training.cli import build_parser, command_for, config_from_args, main
from training.train_config import TrainConfig


def test_flags_build_the_config():
    args = build_parser().parse_args(
        [
            "train",
            "--data",
            "d",
            "--out",
            "o",
            "--arch",
            "convnext_femto",
            "--head",
            "paper",
            "--crop",
            "bbox",
            "--contrast",
            "he",
            "--val-subjects",
            "H10",
            "16",
            "--no-cache",
            "--init-weights",
            "w.pth",
        ]
    )
    config = config_from_args(args)
    assert config.arch == "convnext_femto"
    assert config.head == "paper"
    assert config.crop.value == "bbox"
    assert config.contrast.value == "he"
    assert config.val_subjects == ["H10", "16"]
    assert config.cache is False
    assert config.init_weights == Path("w.pth")


def test_saved_command_reproduces_the_config():
    config = TrainConfig(
        data=Path("/data/C-NMC"),
        out=Path("/tmp/run"),
        arch="convnext_pico",
        img_size=128,
        crop="center",
        val_fold=2,
        lr=3e-4,
        cache=False,
        val_official_fold=None,
    )
    command = command_for("train", config)
    words = shlex.split(command)
    assert words[:4] == ["python", "-m", "training", "train"]
    assert config_from_args(build_parser().parse_args(words[3:])) == config


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
