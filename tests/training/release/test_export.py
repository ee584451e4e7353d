"""End to end on real cells: train a tiny ConvNeXt, export it, and serve it with onnxruntime."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from app.core.classifier import OnnxCellClassifier, sigmoid
from app.core.image_decoding import decode_image
from app.core.manifest import ManifestError, ModelManifest, load_manifest
from app.core.recipe import preprocess
from training.cli import main
from training.fit.checkpoints import load_trained_model
from training.release import export as export_module
from training.release.card_inputs import ExportOptions
from training.release.export import ExportError, export_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    fixtures = Path(__file__).parents[2] / "fixtures" / "cnmc"
    code = main(
        [
            "train",
            "--data",
            str(fixtures),
            "--arch",
            "convnext_atto",
            "--img-size",
            "64",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--val-fold",
            "0",
            "--out",
            str(run),
        ]
    )
    assert code == 0
    return run


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory) -> Path:
    model_dir = tmp_path_factory.mktemp("model") / "tiny"
    args = ["export", "--run", str(trained_run), "--out", str(model_dir), "--id", "tiny"]
    assert main([*args, "--selection", "the only candidate"]) == 0
    return model_dir


def test_run_directory_holds_config_metrics_and_checkpoints(trained_run):
    for name in (
        "config.json",
        "metrics.jsonl",
        "train.log",
        "best.pt",
        "last.pt",
        "val_predictions.csv",
        "command.txt",
    ):
        assert (trained_run / name).is_file(), name
    config = json.loads((trained_run / "config.json").read_text())
    assert set(config["validation_subjects"]).isdisjoint(config["train_subjects"])
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1
    assert "roc_auc" in rows[0]["validation"]
    assert "--img-size 64" in (trained_run / "command.txt").read_text()


def test_onnxruntime_matches_pytorch_on_real_cells(trained_run, exported, cnmc_root):
    classifier = OnnxCellClassifier(exported)
    recipe = classifier.manifest.preprocessing
    files = sorted((cnmc_root / "training_data/fold_1").glob("*/*.png"))
    batch = np.stack([preprocess(decode_image(f.read_bytes()), recipe) for f in files])
    (graph_probabilities,) = classifier.session.run(["probability_all"], {"image": batch})
    with torch.no_grad():
        torch_logits = load_trained_model(trained_run)(torch.from_numpy(batch)).numpy()
    assert graph_probabilities.shape == (18,)
    assert np.abs(graph_probabilities - 1 / (1 + np.exp(-torch_logits))).max() <= 1e-4
    # What is served is the calibrated probability of the same logit.
    onnx_probabilities = classifier.predict(batch).probabilities
    calibration = classifier.manifest.calibration
    assert calibration is not None
    served = sigmoid(calibration.apply(torch_logits))
    assert np.abs(onnx_probabilities - served).max() <= 1e-4
    # A dynamic batch axis: one image alone gives the same answer as inside the batch.
    single = classifier.predict(batch[:1]).probabilities
    assert single[0] == pytest.approx(float(onnx_probabilities[0]), abs=1e-5)


def test_onnxruntime_fuses_every_gelu_of_the_exported_graphs(exported, op_types_after_fusion):
    manifest = load_manifest(exported)
    for name in (manifest.onnx_file, manifest.explain_onnx_file):
        assert name is not None
        fused = op_types_after_fusion(exported / name)
        assert "Erf" not in fused
        assert fused.count("Gelu") >= 12  # ConvNeXt-atto has 12 blocks, one GELU each


def test_manifest_describes_the_model_and_round_trips(exported):
    manifest = load_manifest(exported)
    assert ModelManifest.model_validate_json(manifest.model_dump_json()) == manifest
    assert manifest.id == "tiny"
    assert manifest.architecture == "convnext_atto"
    assert manifest.input.size == manifest.preprocessing.input_size == 64
    assert manifest.preprocessing.mean != (0.5, 0.5, 0.5)  # measured on the training split
    assert "held-out subjects" in manifest.threshold.source
    assert manifest.training_data.images_all + manifest.training_data.images_hem == 12
    assert manifest.evaluations
    assert "roc_auc" in manifest.evaluations[0].metrics
    assert "--epochs 1" in manifest.provenance.training_command
    assert manifest.intended_use.lower().count("not a diagnosis") == 1
    assert manifest.selection == "the only candidate"
    (entry,) = manifest.changelog
    assert (entry.version, entry.card_only) == ("1", False)
    assert entry.changes.startswith("Trained (convnext_atto, 64 px")


def test_a_new_version_carries_the_models_history(trained_run, tmp_path):
    """The card keeps what changed in each version (MONAI bundles keep one)."""
    out = tmp_path / "tiny"
    export_run(trained_run, out, ExportOptions(model_id="tiny", measure_tta_gain=False))
    options = ExportOptions(
        model_id="tiny", version="2", changes="retrained longer", measure_tta_gain=False
    )
    manifest = export_run(trained_run, out, options)
    assert [(e.version, e.changes) for e in manifest.changelog][1:] == [("2", "retrained longer")]
    assert manifest.changelog[0].version == "1"
    other = export_run(trained_run, out, ExportOptions(model_id="other", measure_tta_gain=False))
    assert len(other.changelog) == 1  # another model's history is not inherited


@pytest.mark.parametrize("tampered", ["model.onnx", "explain.onnx"])
def test_a_tampered_graph_is_refused(exported, tmp_path, tampered):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("manifest.json", "model.onnx", "explain.onnx"):
        data = (exported / name).read_bytes()
        (copy / name).write_bytes(data + b"\0" if name == tampered else data)
    with pytest.raises(ManifestError, match="sha256"):
        load_manifest(copy)


def test_export_failing_parity_leaves_nothing_behind(trained_run, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "PARITY_TOLERANCE", -1.0)
    out = tmp_path / "bad"
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_run(trained_run, out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # nor its temporary folder


def test_a_failed_export_over_an_earlier_one_leaves_it_as_it_was(
    trained_run, exported, tmp_path, monkeypatch
):
    """Any failure used to delete --out, even a folder that existed before."""
    import shutil

    earlier = tmp_path / "store" / "tiny"
    shutil.copytree(exported, earlier)
    before = {path.name: path.read_bytes() for path in earlier.iterdir()}
    monkeypatch.setattr(export_module, "PARITY_TOLERANCE", -1.0)
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_run(trained_run, earlier, ExportOptions(model_id="tiny"))
    assert {path.name: path.read_bytes() for path in earlier.iterdir()} == before
    assert [path.name for path in earlier.parent.iterdir()] == ["tiny"]


def test_export_refuses_to_replace_a_folder_that_is_not_a_model(trained_run, tmp_path):
    """A mistyped `--out model_store` would have put a model in place of the whole store."""
    store = tmp_path / "model_store"
    (store / "some-model").mkdir(parents=True)
    (store / "store.json").write_text("{}")
    with pytest.raises(ExportError, match="not a model directory"):
        export_run(trained_run, store)
    assert sorted(path.name for path in store.iterdir()) == ["some-model", "store.json"]


def test_the_export_is_recorded_in_the_stores_index(exported):
    from app.core.manifest import card_sha256
    from app.core.model_registry import ModelRegistry, StoreIndex

    index = StoreIndex.read(exported.parent)
    assert index.card_checksums == {"tiny": card_sha256(exported)}
    assert ModelRegistry.load(exported.parent).default_id == "tiny"


def test_evaluate_prints_one_json_object(exported, cnmc_root, capsys, tmp_path):
    capsys.readouterr()
    code = main(
        [
            "evaluate",
            "--model",
            str(exported),
            "--data",
            str(cnmc_root),
            "--json",
            "--plots",
            str(tmp_path / "plots"),
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    for key in (
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "weighted_f1",
        "roc_auc",
        "confusion_matrix",
        "n",
        "per_subject_accuracy",
    ):
        assert key in report, key
    assert report["n"] == 18
    assert sum(map(sum, report["confusion_matrix"])) == 18
    assert set(report["per_subject_accuracy"]) == {"16", "23", "30", "H10", "H14", "H22"}
    assert (tmp_path / "plots/roc.png").stat().st_size > 1000
    assert (tmp_path / "plots/confusion_matrix.png").stat().st_size > 1000


def test_exported_gradcam_matches_autograd(trained_run, exported, cnmc_root):
    from training.fit.models import autograd_gradcam

    classifier = OnnxCellClassifier(exported)
    recipe = classifier.manifest.preprocessing
    files = sorted((cnmc_root / "training_data/fold_1").glob("*/*.png"))
    batch = np.stack([preprocess(decode_image(f.read_bytes()), recipe) for f in files])
    (onnx_maps,) = classifier.explain_session().run(["gradcam"], {"image": batch})
    reference = autograd_gradcam(load_trained_model(trained_run), torch.from_numpy(batch)).numpy()
    assert onnx_maps.shape == reference.shape == (18, 4, 4)  # 1/16 of 64 px
    assert reference.std() > 0
    correlation = np.corrcoef(onnx_maps.ravel(), reference.ravel())[0, 1]
    assert correlation >= 0.99


def test_a_card_that_no_longer_reads_is_replaced_without_history(trained_run, tmp_path):
    out = tmp_path / "tiny"
    out.mkdir()
    (out / "manifest.json").write_text('{"schema_version": 0}')
    manifest = export_run(trained_run, out, ExportOptions(model_id="tiny", measure_tta_gain=False))
    assert len(manifest.changelog) == 1
    assert load_manifest(out) == manifest


def test_without_an_id_the_model_is_known_by_its_folder(trained_run, tmp_path):
    from app.core.manifest import load_manifest

    out = tmp_path / "store" / "smoke-model"
    args = ["export", "--run", str(trained_run), "--out", str(out), "--no-tta-measurement"]
    assert main(args) == 0
    assert load_manifest(out).id == "smoke-model"
