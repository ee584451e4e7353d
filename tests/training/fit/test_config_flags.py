import shlex
from pathlib import Path

from training.cli import build_parser
from training.fit.config_flags import command_for, config_from_args
from training.fit.train_config import TrainConfig


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


def test_extra_roots_and_population_weights_round_trip_through_the_command():
    config = TrainConfig(
        data=Path("/data/C-NMC"),
        out=Path("/tmp/cv"),
        extra_data=[Path("/data/C-NMC_external")],
        subject_balanced=True,
        population_weights={"external-folds": 3.0, "external-prelim": 0.5},
    )
    words = shlex.split(command_for("cv", config))
    assert "--population-weights" in words
    assert "external-prelim=0.5" in words
    assert config_from_args(build_parser().parse_args(words[3:])) == config
