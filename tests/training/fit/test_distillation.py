import pytest
import torch

from training.fit.artifacts import CvDir, RunDir
from training.fit.distillation import distillation_loss, teacher_runs
from training.fit.train_config import TrainConfig
from training.fit.trainer import train


@pytest.mark.slow
def test_distillation_pulls_towards_the_teacher_and_needs_its_recipe(cnmc_root, tmp_path):
    logits = torch.tensor([0.0, 2.0])
    teacher = torch.nn.Module()
    teacher.forward = lambda batch: torch.tensor([3.0, -3.0])  # type: ignore[method-assign]
    label_loss = torch.tensor(0.25)
    only_labels = distillation_loss(logits, label_loss, [teacher], torch.zeros(2), 0.0)
    assert only_labels.item() == pytest.approx(0.25)
    only_teacher = distillation_loss(logits, label_loss, [teacher], torch.zeros(2), 1.0)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, torch.sigmoid(torch.tensor([3.0, -3.0]))
    )
    assert only_teacher.item() == pytest.approx(expected.item())

    base = {"data": cnmc_root, "arch": "convnext_atto", "img_size": 32, "epochs": 1}
    train(TrainConfig(out=tmp_path / "teacher", batch_size=6, **base))
    student = train(
        TrainConfig(
            out=tmp_path / "student",
            batch_size=6,
            teacher=tmp_path / "teacher",
            distillation_weight=0.7,
            scale_jitter=0.25,
            intensity_jitter=0.3,
            stain_jitter=0.05,
            subject_balanced=True,
            **base,
        )
    )
    assert (student.run_dir / "last.pt").is_file()
    with pytest.raises(ValueError, match="another recipe"):
        train(
            TrainConfig(
                out=tmp_path / "mismatch",
                batch_size=6,
                teacher=tmp_path / "teacher",
                crop="bbox",
                **base,
            )
        )


def test_a_cv_teaches_fold_by_fold_and_a_run_alone(tmp_path):
    cv = CvDir(tmp_path / "cv")
    for k in (1, 0):
        cv.fold(k).path.mkdir(parents=True)
    assert teacher_runs(cv.path, val_fold=1) == [cv.fold(1)]
    assert teacher_runs(cv.path, val_fold=None) == [cv.fold(0), cv.fold(1)]
    run = tmp_path / "run"
    run.mkdir()
    assert teacher_runs(run, val_fold=1) == [RunDir(run)]


def test_a_teacher_that_learned_from_a_held_out_person_is_refused(tmp_path):
    from training.fit.artifacts import RunConfig
    from training.fit.distillation import load_teachers

    teacher = RunDir(tmp_path / "teacher")
    teacher.path.mkdir()
    taught = TrainConfig(data=tmp_path, out=teacher.path, img_size=32)
    teacher.write_config(
        RunConfig(
            train=taught,
            preprocessing=taught.preprocess_config(),
            split=None,
            train_subjects={"1": 3, "2": 3, "H1": 2},
            validation_subjects={},
        )
    )
    student = TrainConfig(
        data=tmp_path, out=tmp_path / "student", img_size=32, teacher=teacher.path
    )
    with pytest.raises(ValueError, match=r"learned from 1 people this run holds out \(H1\)"):
        load_teachers(student, student.preprocess_config(), held_out={"H1", "H9"})
