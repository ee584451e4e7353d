import numpy as np
import pytest

from training.cli import main


@pytest.fixture
def linear_args(cnmc_root, external_people_root):
    return [
        "--data",
        str(cnmc_root),
        "--extra-data",
        str(external_people_root),
        "--arch",
        "tf_efficientnet_lite0",
        "--img-size",
        "32",
        "--subject-balanced",
        "--population-weights",
        "external-folds=3",
        "external-prelim=3",
        "--folds",
        "2",
    ]


def test_the_folded_layer_is_the_standardised_regression():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from training.fit.linear_head import folded_linear_layer

    rng = np.random.default_rng(0)
    features = rng.normal(3, 2, size=(60, 5))
    labels = (features[:, 0] + rng.normal(size=60) > 3).astype(int)
    head = make_pipeline(StandardScaler(), LogisticRegression(C=0.1)).fit(features, labels)
    weight, bias = folded_linear_layer(head)
    assert features @ weight + bias == pytest.approx(head.decision_function(features))


def test_cv_then_run_then_export(linear_args, tmp_path, capsys):
    from app.core.manifest import load_manifest
    from training.fit.artifacts import CvDir, RunDir

    cv, run, model = tmp_path / "cv", tmp_path / "run", tmp_path / "store" / "linear-test"
    assert main(["linear-head-cv", *linear_args, "--out", str(cv)]) == 0
    out_of_fold = CvDir(cv).read_out_of_fold()
    assert {i.population for i in out_of_fold.images} == {
        "fold1",
        "external-folds",
        "external-prelim",
    }
    assert len({i.path for i in out_of_fold.images}) == len(out_of_fold.images)
    assert (cv / "populations.json").is_file()
    assert_each_fold_head_is_a_run_that_scores_its_held_out_people(cv)
    assert CvDir(cv).read_summary().config.population_weights == {
        "external-folds": 3.0,
        "external-prelim": 3.0,
    }
    assert main(["linear-head", *linear_args, "--out", str(run)]) == 0
    resolved = RunDir(run).read_config()
    assert set(resolved.subject_populations.values()) == {
        "fold1",
        "external-folds",
        "external-prelim",
    }
    assert "linear-head" in RunDir(run).read_command()
    args = ["export", "--run", str(run), "--cv", str(cv), "--out", str(model)]
    assert main([*args, "--threshold-rule", "uncalibrated_half", "--no-tta-measurement"]) == 0
    card = load_manifest(model)
    assert card.id == "linear-test"
    unseen = [e for e in card.evaluations if e.protocol.startswith("unseen subjects")]
    assert len(unseen) == 1
    assert "confusion_matrix" in unseen[0].metrics
    assert card.training_data.people_per_population["external-prelim"] >= 1
    assert "prelim_test" in card.training_data.folds
    assert str(tmp_path) not in card.threshold.source
    (per_population,) = [e for e in card.evaluations if e.protocol.startswith("out-of-fold per")]
    for population in ("fold1", "external_folds", "external_prelim"):
        low = per_population.metrics[f"roc_auc_{population}_low"]
        assert low <= per_population.metrics[f"roc_auc_{population}"]
        assert f"subject_roc_auc_{population}" in per_population.metrics
    assert_rates_are_re_recorded_from_a_cv_of_the_same_recipe_only(
        linear_args, model, tmp_path, capsys
    )
    # with a threshold chosen on these predictions, the external rates are not recorded
    other = tmp_path / "store" / "linear-youden"
    args = ["export", "--run", str(run), "--cv", str(cv), "--out", str(other)]
    assert main([*args, "--no-tta-measurement"]) == 0
    card = load_manifest(other)
    assert not [e for e in card.evaluations if e.protocol.startswith("unseen subjects")]


def test_a_linear_head_is_one_linear_layer(linear_args, tmp_path, capsys):
    assert main(["linear-head", *linear_args, "--head", "paper", "--out", str(tmp_path)]) == 2
    assert "--head timm" in capsys.readouterr().err


def assert_each_fold_head_is_a_run_that_scores_its_held_out_people(cv):
    """A fold's head, as a run, is what `--teacher` reads: it never saw its held-out people and
    gives them the out-of-fold logits."""
    import torch

    from training.data.image_batches import preprocessed_batches
    from training.fit.artifacts import CvDir
    from training.fit.checkpoints import load_trained_model

    out_of_fold = CvDir(cv).read_out_of_fold()
    logit_of = dict(zip((i.path for i in out_of_fold.images), out_of_fold.logits, strict=True))
    folds = CvDir(cv).folds()
    assert len(folds) == 2
    for run in folds:
        config = run.read_config()
        assert config.validation_subjects
        assert not set(config.train_subjects) & set(config.validation_subjects)
        held = [i for i in out_of_fold.images if i.subject in config.validation_subjects]
        model = load_trained_model(run.path).eval()
        paths = [i.path for i in held]
        with torch.inference_mode():
            batches = preprocessed_batches(paths, config.preprocessing, 16)
            logits = np.concatenate([model(torch.from_numpy(b)).numpy().ravel() for b in batches])
        assert logits == pytest.approx([logit_of[p] for p in paths], abs=1e-3)


def assert_rates_are_re_recorded_from_a_cv_of_the_same_recipe_only(
    linear_args, model, tmp_path, capsys
):
    """A newer CV of the served recipe (here 3 folds) replaces the card's unseen-patient
    figures; the graph, threshold and calibration stay; another recipe is refused."""
    from app.core.manifest import load_manifest
    from training.fit.artifacts import CvDir
    from training.release.card_evaluations import unseen_people_evaluation
    from training.release.decision_rule import DecisionRule

    before = load_manifest(model)
    newer = tmp_path / "cv-newer"
    three_folds = [*linear_args[:-1], "3"]
    assert main(["linear-head-cv", *three_folds, "--out", str(newer)]) == 0
    assert main(["recipe-rates", "--model", str(model), "--cv", str(newer)]) == 0
    after = load_manifest(model)
    assert (after.onnx_sha256, after.threshold, after.calibration) == (
        before.onnx_sha256,
        before.threshold,
        before.calibration,
    )
    (unseen,) = [e for e in after.evaluations if e.protocol.startswith("unseen subjects")]
    assert "from the cross-validation cv-newer" in unseen.protocol
    rule = DecisionRule(after.threshold.value, "served", None, after.calibration)
    expected = unseen_people_evaluation(
        CvDir(newer).read_out_of_fold(), rule.probabilities, rule.threshold
    )
    assert unseen.metrics == expected.metrics
    assert len(after.evaluations) == len(before.evaluations)
    assert "re-recorded from cv-newer" in after.changelog[-1].changes

    other = tmp_path / "cv-other-recipe"
    assert main(["linear-head-cv", *linear_args, "--img-size", "48", "--out", str(other)]) == 0
    capsys.readouterr()
    assert main(["recipe-rates", "--model", str(model), "--cv", str(other)]) == 2
    assert "differs in img_size" in capsys.readouterr().err
