"""`python -m training <job>`, a command per job: index, train, cv, export, evaluate,
counterfactual, heat-in-cell, external, compare, populations, weighting, sample-simulation.

The train and cv flags are generated from `TrainConfig`, so every flag is a config field and
every saved config can be turned back into the command that reproduces it; `--config FILE`
reruns a saved config (its values are the defaults, flags given beside it override them).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import types
import typing
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path

from pydantic.fields import FieldInfo

from training.artifacts import read_train_config
from training.dataset_index import DatasetError, DatasetIndex, index_dataset, index_prelim_test
from training.train_config import TrainConfig

REQUIRED_TRAIN_FLAGS = ("data", "out")
CONFIG_COMMANDS = ("train", "cv", "linear-head", "linear-head-cv")
VALUE_TYPES: dict[object, Callable[[str], object]] = {int: int, float: float, str: str, Path: Path}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unwrap_optional(annotation: object) -> object:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _add_config_arguments(parser: argparse.ArgumentParser, saved: TrainConfig | None) -> None:
    """A flag per config field; with a `saved` config (--config), its values are the defaults,
    except --out: a rerun writes where it is told, never over the run it came from."""
    parser.add_argument(
        "-c",
        "--config",
        dest="config_file",
        type=Path,
        metavar="FILE",
        help="rerun a saved configuration (a run's config.json or a cv's cv_config.json): its "
        "values are the defaults, flags given here override them",
    )
    for name, field in TrainConfig.model_fields.items():
        if saved is not None and name != "out":
            default = getattr(saved, name)
        else:
            default = None if name in REQUIRED_TRAIN_FLAGS else field.default
        required = name in REQUIRED_TRAIN_FLAGS and (saved is None or name == "out")
        _add_field_argument(parser, name, field, default, required=required)


def _add_field_argument(
    parser: argparse.ArgumentParser,
    name: str,
    field: FieldInfo,
    default: object,
    *,
    required: bool,
) -> None:
    annotation = _unwrap_optional(field.annotation)
    shown = None if name in REQUIRED_TRAIN_FLAGS else field.default
    help_text = (field.description or "") + (f" (default: {shown})" if shown is not None else "")
    flag, text = _flag(name), help_text or None
    if isinstance(default, Enum):
        default = default.value
    if annotation is bool:
        action = argparse.BooleanOptionalAction
        parser.add_argument(flag, dest=name, help=text, action=action, default=default)
    elif typing.get_origin(annotation) is list:
        parser.add_argument(flag, dest=name, help=text, nargs="+", default=default)
    elif typing.get_origin(annotation) is dict:
        parser.add_argument(
            flag, dest=name, help=text, nargs="+", type=_key_value, default=default, metavar="K=V"
        )
    elif typing.get_origin(annotation) is typing.Literal:
        choices = list(typing.get_args(annotation))
        parser.add_argument(flag, dest=name, help=text, choices=choices, default=default)
    elif isinstance(annotation, type) and issubclass(annotation, Enum):
        choices = [member.value for member in annotation]
        parser.add_argument(flag, dest=name, help=text, choices=choices, default=default)
    else:
        value_type = VALUE_TYPES.get(annotation, str)
        parser.add_argument(
            flag, dest=name, help=text, type=value_type, default=default, required=required
        )


def _key_value(word: str) -> tuple[str, str]:
    key, equals, value = word.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {word!r}")
    return key, value


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {name: getattr(args, name) for name in TrainConfig.model_fields}
    for name, value in values.items():
        if isinstance(value, list) and value and isinstance(value[0], tuple):
            values[name] = dict(value)
    return TrainConfig.model_validate(values)


def command_for(job: str, config: TrainConfig) -> str:
    """The shortest command line that reproduces `config`."""
    words = ["python", "-m", "training", job]
    defaults = TrainConfig(data=config.data, out=config.out)
    for name in TrainConfig.model_fields:
        value = getattr(config, name)
        if name not in REQUIRED_TRAIN_FLAGS and value == getattr(defaults, name):
            continue
        if isinstance(value, bool):
            words.append(_flag(name) if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, list):
            words += [_flag(name), *map(str, value)]
        elif isinstance(value, dict):
            words += [_flag(name), *(f"{key}={item}" for key, item in value.items())]
        else:
            words += [_flag(name), str(value.value if isinstance(value, Enum) else value)]
    return shlex.join(words)


def build_parser(saved: TrainConfig | None = None) -> argparse.ArgumentParser:
    """The whole command line; `saved` gives the train and cv flags their defaults."""
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_index_command(commands)
    _add_training_commands(commands, saved)
    _add_export_command(commands)
    _add_evaluate_command(commands)
    _add_counterfactual_command(commands)
    _add_heat_in_cell_command(commands)
    _add_external_command(commands)
    _add_morphology_command(commands)
    _add_adapt_command(commands)
    _add_compare_command(commands)
    _add_populations_command(commands)
    _add_weighting_command(commands)
    summarize = commands.add_parser(
        "summarize",
        help="write a cv's cv_summary.json again from its out-of-fold predictions (a cv stopped "
        "after its folds)",
    )
    summarize.add_argument("cv_dir", type=Path, metavar="CV_DIR")
    _add_sample_simulation_command(commands)
    return parser


def _add_weighting_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    weighting = commands.add_parser(
        "weighting",
        help="what weighting external people up or down does: a linear head on frozen ImageNet "
        "features, per external factor, out of fold per population",
    )
    weighting.add_argument("--data", type=Path, required=True, help="main C-NMC root")
    weighting.add_argument("--extra-data", type=Path, nargs="*", default=[])
    weighting.add_argument(
        "--recipe-from", type=Path, required=True, help="a train run: its recipe prepares cells"
    )
    weighting.add_argument("--arch", default="tf_efficientnet_lite0")
    weighting.add_argument("--init-weights", type=Path, help="the backbone's ImageNet weights")
    weighting.add_argument("--external-factor", type=float, nargs="+", default=[0.0, 1.0, 3.0])
    weighting.add_argument("--folds", type=int, default=5)
    _add_report_arguments(weighting)


def _add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """The resampling and output flags every per-population table takes."""
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write every report here")


def _add_populations_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    populations = commands.add_parser(
        "populations",
        help="the candidate table per population: each cv's out-of-fold figures, served models "
        "on the people they never saw, and the cell-area and mean-grey baselines",
    )
    populations.add_argument("cv_dirs", type=Path, nargs="*", metavar="CV_DIR")
    populations.add_argument(
        "--model", type=Path, action="append", default=[], help="an exported model (repeatable)"
    )
    populations.add_argument(
        "--unseen",
        nargs="+",
        default=["external-folds", "external-prelim"],
        help="with --model: the populations the models never saw",
    )
    populations.add_argument("--data", type=Path, help="main root, for --model and --baselines")
    populations.add_argument("--extra-data", type=Path, nargs="*", default=[])
    populations.add_argument("--baselines", action="store_true", help="add cell area and grey")
    populations.add_argument(
        "--blend",
        type=Path,
        nargs=2,
        action="append",
        default=[],
        metavar=("CV_A", "CV_B"),
        help="also the equal-weight blend of two cvs' out-of-fold logits (repeatable)",
    )
    _add_report_arguments(populations)


def _add_index_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    index = commands.add_parser("index", help="count images per fold, class and subject")
    index.add_argument(
        "--data", type=Path, help="C-NMC root (or --test-images with --test-csv alone)"
    )
    index.add_argument("--no-dedupe", action="store_true", help="keep pixel-identical images")
    index.add_argument("--test-csv", type=Path, help="preliminary-test labels CSV")
    index.add_argument("--test-images", type=Path, help="folder of the preliminary-test images")
    index.add_argument("--json", action="store_true")


def _add_training_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], saved: TrainConfig | None
) -> None:
    """train and cv: a flag per TrainConfig field."""
    for name, help_text in (
        ("train", "train one model (validation split optional)"),
        ("cv", "subject-grouped cross-validation"),
        (
            "linear-head",
            "frozen ImageNet features + an L2 logistic head on every indexed person, as a run "
            "for export (--init-weights; --subject-balanced weighting, --population-weights)",
        ),
        ("linear-head-cv", "the subject-grouped cross-validation of linear-head"),
    ):
        # No abbreviations: `--conf` must not pass silently for a flag the pre-parser never saw.
        parser = commands.add_parser(name, help=help_text, allow_abbrev=False)
        _add_config_arguments(parser, saved)


def _add_export_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = commands.add_parser("export", help="export a run to ONNX with its model card")
    export.add_argument("--run", type=Path, required=True, help="a train run directory")
    export.add_argument("--out", type=Path, required=True, help="model directory to write")
    export.add_argument(
        "--id",
        dest="model_id",
        help="model id (default: the --out folder's name when it is a valid id, else "
        "arch-size-crop); the store finds a model by its folder",
    )
    export.add_argument("--version", default="1")
    export.add_argument(
        "--cv",
        type=Path,
        help="a cv directory: its out-of-fold predictions fit the calibration and choose the "
        "threshold; its metrics go into the card",
    )
    export.add_argument(
        "--selection",
        help="for the card: how this model was chosen against the others (e.g. the bake-off)",
    )
    export.add_argument(
        "--changes",
        default="",
        help="for the card's changelog: what is new in this version (default: names the run)",
    )
    export.add_argument(
        "--threshold-rule",
        choices=["best_balanced_accuracy", "uncalibrated_half"],
        default="best_balanced_accuracy",
        help="with --cv: the threshold with the best balanced accuracy on the out-of-fold "
        "predictions, or where the uncalibrated probability is 0.5 (for a model trained "
        "class-balanced; fitted to nothing)",
    )
    export.add_argument(
        "--no-tta-measurement",
        action="store_true",
        help="skip measuring test-time augmentation on held-out subjects",
    )


def _add_evaluate_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = commands.add_parser("evaluate", help="evaluate an exported model on a C-NMC folder")
    evaluate.add_argument("--model", type=Path, required=True, help="model directory")
    evaluate.add_argument("--data", type=Path, help="C-NMC-layout root")
    evaluate.add_argument("--test-csv", type=Path, help="preliminary-test labels CSV")
    evaluate.add_argument("--test-images", type=Path, help="preliminary-test image folder")
    evaluate.add_argument("--threshold", type=float, help="override the manifest's threshold")
    evaluate.add_argument("--no-dedupe", action="store_true")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--plots", type=Path, help="write roc.png and confusion_matrix.png here")


def _add_counterfactual_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    counterfactual = commands.add_parser(
        "counterfactual",
        help="colour-counterfactual test: re-colour each cell to the other class and re-score",
    )
    subject = counterfactual.add_mutually_exclusive_group(required=True)
    subject.add_argument("--model", type=Path, help="an exported model directory")
    subject.add_argument(
        "--cv",
        type=Path,
        help="a cv directory: each fold's model on its held-out subjects (out of sample)",
    )
    counterfactual.add_argument("--data", type=Path, help="C-NMC-layout root (with --model)")
    counterfactual.add_argument(
        "--reference", type=Path, help="root whose cells give the class colours (default: --data)"
    )
    counterfactual.add_argument("--json", action="store_true")


def _add_heat_in_cell_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    heat = commands.add_parser(
        "heat-in-cell",
        help="share of each fold's Grad-CAM heat inside the cell, on its held-out subjects",
    )
    heat.add_argument("--cv", type=Path, required=True, help="a cv directory")
    heat.add_argument("--json", action="store_true", help="print the whole report")


def _add_external_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    external = commands.add_parser(
        "external",
        help="measure on patients outside the training data (per part, per subject, intervals "
        "from resampling subjects, image-only baselines); never tune on it",
    )
    scored = external.add_mutually_exclusive_group(required=True)
    scored.add_argument("--model", type=Path, help="an exported model directory")
    scored.add_argument(
        "--cv", type=Path, help="a cv directory: every fold model and their ensemble"
    )
    external.add_argument(
        "--data",
        type=Path,
        required=True,
        help="root with training_data/fold_*/{all,hem} and/or the preliminary test set "
        "(C-NMC_test_prelim_phase_data/ and its labels CSV)",
    )
    external.add_argument(
        "--against", type=Path, help="a second exported model: paired AUC differences"
    )
    external.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None)
    external.add_argument(
        "--record-in-card",
        action="store_true",
        help="with --model: write the evaluation and a plain limitation into the model's card",
    )
    external.add_argument("--selection", help="with --record-in-card: the card's selection note")
    external.add_argument("--resamples", type=int, default=2000)
    external.add_argument("--seed", type=int, default=0)
    external.add_argument(
        "--out",
        type=Path,
        help="where to write external_evaluation.json/.md (default: the --cv directory; "
        "with --model, printed only)",
    )


def _add_morphology_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    morphology = commands.add_parser(
        "morphology",
        help="the morphology candidate: shape, nucleus and texture features with a linear "
        "classifier; subject-grouped CV on --data, then measured on --external",
    )
    morphology.add_argument("--data", type=Path, required=True, help="training C-NMC root")
    morphology.add_argument("--external", type=Path, help="unseen-subject root to measure on")
    morphology.add_argument(
        "--extra-data",
        type=Path,
        nargs="*",
        default=[],
        help="roots of more people that join the CV (issue 28): person-balanced, out-of-fold "
        "predictions written to --out as a cv directory for `populations`",
    )
    morphology.add_argument("--folds", type=int, default=3)
    morphology.add_argument("--resamples", type=int, default=2000)
    morphology.add_argument("--out", type=Path, help="write external_evaluation.json/.md here")
    morphology.add_argument(
        "--blend-with",
        type=Path,
        help="an exported model: also report it, and its equal-weight blend with the "
        "morphology model (threshold-centred logits; nothing fitted on the unseen cells)",
    )


def _add_adapt_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    adapt = commands.add_parser(
        "adapt",
        help="a site model from a lab's reviewed cells (recalibration or head refit), measured "
        "on the lab's held-out subjects; written as a new model directory",
    )
    adapt.add_argument("--model", type=Path, required=True, help="the parent model directory")
    adapt.add_argument(
        "--reviews",
        required=True,
        help="the review records: the server's database (its SQLite file, or the "
        "LEUKOLENS_DATABASE_URL of a PostgreSQL deployment), or a CSV with the columns "
        "image,label,subject",
    )
    adapt.add_argument(
        "--images", type=Path, required=True, help="folder the reviewed images are under"
    )
    adapt.add_argument("--out", type=Path, required=True, help="new model directory to write")
    adapt.add_argument(
        "--strength", choices=["recalibration", "head_refit"], default="recalibration"
    )
    adapt.add_argument("--id", dest="model_id", required=True, help="the adapted model's id")
    adapt.add_argument("--version", default="1")
    adapt.add_argument("--min-subjects-per-class", type=int, default=3)
    adapt.add_argument("--head-l2", type=float, default=1.0, help="pull toward the parent head")


def _add_compare_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    compare = commands.add_parser(
        "compare", help="the bake-off table: one markdown row per cross-validation directory"
    )
    compare.add_argument("cv_dirs", type=Path, nargs="+", metavar="CV_DIR")
    compare.add_argument(
        "--no-latency", action="store_true", help="skip exporting fold 0 to time onnxruntime"
    )
    compare.add_argument("--json", type=Path, help="also write the rows here")


def _add_sample_simulation_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    simulation = commands.add_parser(
        "sample-simulation",
        help="samples of 10-200 cells at known blast shares: error and interval coverage of "
        "the corrected share of blast-like cells",
    )
    simulated = simulation.add_mutually_exclusive_group(required=True)
    simulated.add_argument(
        "--cv", type=Path, help="a cv directory: samples from its held-out subjects' cells"
    )
    simulated.add_argument(
        "--card",
        type=Path,
        help="an exported model directory: SYNTHETIC calls at its card's sensitivity and "
        "specificity (checks the estimator, not the model)",
    )
    simulation.add_argument(
        "--unseen-data",
        type=Path,
        help="with --card: score this C-NMC root's unseen subjects as served, each one sample, "
        "instead of simulating",
    )
    simulation.add_argument("--repeats", type=int, default=100, help="samples per table cell")
    simulation.add_argument("--seed", type=int, default=0)
    simulation.add_argument("--out", type=Path, help="write the report as JSON here")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """As timm's -c/--config: read the saved config first, then parse every flag with its
    values as the defaults, so that the flags given override them one by one."""
    words = list(sys.argv[1:] if argv is None else argv)
    saved = None
    if words and words[0] in CONFIG_COMMANDS:
        config_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        config_parser.add_argument("-c", "--config", type=Path)
        known, _ = config_parser.parse_known_args(words[1:])
        if known.config is not None:
            try:
                saved = read_train_config(known.config)
            except (OSError, ValueError) as error:
                build_parser().error(f"--config {known.config}: {error}")
    return build_parser(saved).parse_args(words)


def _load_index(args: argparse.Namespace) -> DatasetIndex:
    if args.test_csv is not None or args.test_images is not None:
        if args.test_csv is None or args.test_images is None:
            raise DatasetError("--test-csv and --test-images go together")
        return index_prelim_test(args.test_images, args.test_csv)
    if args.data is None:
        raise DatasetError("give --data, or --test-csv with --test-images")
    return index_dataset(args.data, deduplicate=not args.no_dedupe)


def run_index(args: argparse.Namespace) -> None:
    index = _load_index(args)
    rows = index.counts()
    if args.json:
        payload = {
            "images": len(index.images),
            "duplicates_removed": index.duplicates_removed,
            "conflicting_duplicates": index.conflicting_duplicates,
            "counts": [
                {"fold": fold, "label": label, "subject": subject, "images": n}
                for fold, label, subject, n in rows
            ],
        }
        print(json.dumps(payload, indent=2))
        return
    print(f"{'fold':<12} {'label':<5} {'subject':<8} {'images':>6}")
    for fold, label, subject, n in rows:
        print(f"{fold or '-':<12} {label:<5} {subject:<8} {n:>6}")
    per_label = {label: sum(r[3] for r in rows if r[1] == label) for label in ("ALL", "HEM")}
    subjects = {label: len({r[2] for r in rows if r[1] == label}) for label in ("ALL", "HEM")}
    print(
        f"\n{len(index.images)} images: ALL {per_label['ALL']} ({subjects['ALL']} subjects), "
        f"HEM {per_label['HEM']} ({subjects['HEM']} subjects); "
        f"{index.duplicates_removed} pixel-identical duplicates removed"
    )


def run_train(args: argparse.Namespace) -> None:
    from training import distributed
    from training.trainer import train

    config = config_from_args(args)
    result = train(config, command=command_for("train", config))
    group = distributed.join_from_environment()
    distributed.leave(group)
    if not group.is_main:
        return
    if result.best_metrics is not None:
        print(json.dumps({"best_validation": result.best_metrics.as_dict()}, indent=2))
    print(f"run written to {result.run_dir}")


def run_linear_head(args: argparse.Namespace) -> None:
    from training.artifacts import RunDir
    from training.linear_head import linear_head_run

    config = config_from_args(args)
    if config.has_validation:
        raise DatasetError("linear-head fits every indexed person; its CV is linear-head-cv")
    run = linear_head_run(config)
    RunDir(run).write_command(command_for("linear-head", config))
    print(f"run written to {run}")


def run_linear_head_cv(args: argparse.Namespace) -> None:
    from training.artifacts import CvDir
    from training.linear_head import linear_head_cv
    from training.population_report import markdown_table, read_population_report

    config = config_from_args(args)
    cv = linear_head_cv(config)
    CvDir(cv).write_command(command_for("linear-head-cv", config))
    print(markdown_table([read_population_report(cv)]))


def run_cv(args: argparse.Namespace) -> None:
    from training.cross_validation import run_cross_validation

    config = config_from_args(args)
    summary = run_cross_validation(config, command=command_for("cv", config))
    figures = summary.model_dump(mode="json", include={"mean_std", "pooled"})
    print(json.dumps({k: figures[k] for k in ("mean_std", "pooled")}, indent=2))


def run_export(args: argparse.Namespace) -> None:
    from training.artifacts import RunDir
    from training.export import ExportOptions, export_run

    config = RunDir(args.run).read_config().train
    folder_id = args.out.name if re.fullmatch(r"[a-z0-9][a-z0-9._-]*", args.out.name) else None
    options = ExportOptions(
        model_id=args.model_id or folder_id,
        version=args.version,
        cv_dir=args.cv,
        training_command=command_for("train", config),
        selection=args.selection,
        measure_tta_gain=not args.no_tta_measurement,
        threshold_rule=args.threshold_rule,
        changes=args.changes,
    )
    manifest = export_run(args.run, args.out, options)
    print(
        f"exported {manifest.id} v{manifest.version} to {args.out} "
        f"(threshold {manifest.threshold.value:.4f}, sha256 {manifest.onnx_sha256[:12]})"
    )


def run_evaluate(args: argparse.Namespace) -> None:
    from training.evaluate import evaluate_model, format_table, save_plots

    result = evaluate_model(args.model, _load_index(args), threshold=args.threshold)
    if args.plots is not None:
        save_plots(result, args.plots)
    print(json.dumps(result.as_json()) if args.json else format_table(result))


def run_counterfactual(args: argparse.Namespace) -> None:
    from app.core.classifier import OnnxCellClassifier
    from training.colour_counterfactual import colour_counterfactual

    if args.cv is not None:
        from training.cross_validation import counterfactual_on_held_out_folds

        cv_report = counterfactual_on_held_out_folds(args.cv)
        print(
            json.dumps(
                cv_report.model_dump(mode="json") if args.json else cv_report.pooled,
                indent=None if args.json else 2,
            )
        )
        return
    if args.data is None:
        raise DatasetError("--model needs --data")
    images = index_dataset(args.data).images
    reference = index_dataset(args.reference).images if args.reference else images
    result = colour_counterfactual(OnnxCellClassifier(args.model), images, reference)
    report = result.as_json()
    if args.json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key:<34} {value}")


def run_heat_in_cell(args: argparse.Namespace) -> None:
    from training.cross_validation import heat_on_held_out_folds

    report = heat_on_held_out_folds(args.cv)
    figures = report.model_dump(mode="json") if args.json else report.pooled
    print(json.dumps(figures, indent=None if args.json else 2))


def run_external(args: argparse.Namespace) -> None:
    from training.external_evaluation import (
        external_report,
        index_external,
        markdown,
        record_in_card,
        score_cross_validation,
        score_model_dir,
        write_report,
    )

    data = index_external(args.data)
    if args.cv is not None:
        scorers = score_cross_validation(args.cv, data.images)
    else:
        scorers = [score_model_dir(args.model, data.images, tta=args.tta)]
    against = score_model_dir(args.against, data.images) if args.against else None
    report = external_report(
        data, scorers, root=args.data, against=against, resamples=args.resamples, seed=args.seed
    )
    out = args.out or args.cv
    print(write_report(report, out) if out is not None else markdown(report))
    if args.record_in_card:
        if args.model is None:
            raise DatasetError("--record-in-card needs --model")
        print(f"recorded in {record_in_card(args.model, report, selection=args.selection)}")


def run_morphology(args: argparse.Namespace) -> None:
    import numpy as np

    from app.core.manifest import ManifestError, load_manifest
    from training.classification_metrics import binary_metrics
    from training.decision_rule import best_balanced_accuracy_threshold
    from training.external_evaluation import (
        Scores,
        external_report,
        index_external,
        markdown,
        score_model_dir,
        write_report,
    )
    from training.morphology import (
        feature_matrix,
        morphology_classifier,
        out_of_fold_probabilities,
    )
    from training.score_blending import threshold_centred_blend

    if args.blend_with is not None:
        if args.external is None:
            raise DatasetError("--blend-with needs --external")
        try:  # before minutes of feature extraction, not after
            load_manifest(args.blend_with)
        except (OSError, ManifestError) as error:
            raise DatasetError(f"--blend-with {args.blend_with}: {error}") from error
    if args.extra_data:
        _morphology_over_populations(args)
        return
    images = index_dataset(args.data).images
    labels = np.asarray([image.label for image in images])
    features = feature_matrix(images)
    out_of_fold = out_of_fold_probabilities(images, features, args.folds)
    threshold = best_balanced_accuracy_threshold(labels.tolist(), out_of_fold.tolist())
    cv = binary_metrics(labels, out_of_fold, threshold)
    print(
        f"fold-1 CV, out of fold: ROC AUC {cv.roc_auc:.3f}, balanced accuracy "
        f"{cv.balanced_accuracy:.3f} at the out-of-fold threshold {threshold:.3f}"
    )
    if args.external is None:
        return
    model = morphology_classifier().fit(features, labels)
    data = index_external(args.external)
    probabilities = model.predict_proba(feature_matrix(data.images))[:, 1]
    scorers = [Scores("morphology (logistic regression)", probabilities, threshold)]
    against = None
    if args.blend_with is not None:
        against = score_model_dir(args.blend_with, data.images)
        scorers.append(
            threshold_centred_blend(f"morphology + {against.name} (blend)", [scorers[0], against])
        )
    report = external_report(
        data, scorers, root=args.external, against=against, resamples=args.resamples
    )
    print(write_report(report, args.out) if args.out else markdown(report))


def run_adapt(args: argparse.Namespace) -> None:
    from training.adaptation import AdaptationError, adapt_model

    try:
        manifest = adapt_model(
            args.model,
            args.reviews,
            args.images,
            args.out,
            strength=args.strength,
            model_id=args.model_id,
            version=args.version,
            minimum_subjects_per_class=args.min_subjects_per_class,
            head_l2=args.head_l2,
            command=shlex.join(["python", "-m", "training", *sys.argv[1:]]),
        )
    except AdaptationError as error:
        raise DatasetError(str(error)) from error
    adaptation = manifest.adaptation
    assert adaptation is not None
    before, after = adaptation.before.metrics, adaptation.after.metrics
    for name in ("roc_auc", "balanced_accuracy", "sensitivity", "specificity"):
        print(
            f"{name:<18} parent {before[name]:.3f} [{before[name + '_low']:.2f}, "
            f"{before[name + '_high']:.2f}]   adapted {after[name]:.3f} "
            f"[{after[name + '_low']:.2f}, {after[name + '_high']:.2f}]"
        )
    print(f"held out: {adaptation.held_out_protocol}")
    if not adaptation.better_on_held_out:
        print("NOT better than the parent on held-out subjects: keep using the parent.")
    print(f"written to {args.out} ({manifest.id} v{manifest.version})")


def run_compare(args: argparse.Namespace) -> None:
    from training.comparison import candidate_row, markdown_table, rows_as_json

    rows = [candidate_row(d, measure_latency=not args.no_latency) for d in args.cv_dirs]
    if args.json is not None:
        args.json.write_text(json.dumps(rows_as_json(rows), indent=2) + "\n", encoding="utf-8")
    print(markdown_table(rows))


def run_sample_simulation(args: argparse.Namespace) -> None:
    from training.sample_simulation import markdown, run

    try:
        report = run(
            cv_dir=args.cv,
            card_dir=args.card,
            out=args.out,
            repeats=args.repeats,
            seed=args.seed,
            unseen_data=args.unseen_data,
        )
    except (OSError, ValueError) as error:
        raise DatasetError(str(error)) from error
    print(markdown(report))


def _morphology_over_populations(args: argparse.Namespace) -> None:
    """The morphology model in the CV over every person: out-of-fold predictions as a cv."""
    import numpy as np

    from training.artifacts import CvDir
    from training.dataset_index import index_training_data
    from training.morphology import feature_matrix, out_of_fold_probabilities
    from training.population_report import cv_population_report, markdown_table
    from training.predictions import Predictions

    if args.out is None:
        raise DatasetError("--extra-data needs --out (a directory for the predictions)")
    images = index_training_data(args.data, args.extra_data).images
    probabilities = out_of_fold_probabilities(
        images, feature_matrix(images), args.folds, person_balanced=True
    )
    clipped = np.clip(probabilities, 1e-6, 1 - 1e-6)
    args.out.mkdir(parents=True, exist_ok=True)
    CvDir(args.out).write_out_of_fold(
        Predictions(images, np.log(clipped / (1 - clipped)), probabilities)
    )
    print(markdown_table([cv_population_report(args.out, resamples=args.resamples)]))


def run_populations(args: argparse.Namespace) -> None:
    from training.dataset_index import index_training_data
    from training.population_report import (
        baseline_reports,
        blended_report,
        cv_population_report,
        markdown_table,
        served_model_report,
    )

    if (args.model or args.baselines) and args.data is None:
        raise DatasetError("--model and --baselines need --data (and --extra-data)")
    draws = {"resamples": args.resamples, "seed": args.seed}
    try:
        reports = [cv_population_report(cv_dir, **draws) for cv_dir in args.cv_dirs]
        reports += [blended_report(first, second, **draws) for first, second in args.blend]
    except (OSError, ValueError) as error:
        raise DatasetError(str(error)) from error
    if args.data is not None:
        images = index_training_data(args.data, args.extra_data).images
        reports += [
            served_model_report(model, images, unseen=args.unseen, **draws) for model in args.model
        ]
        if args.baselines:
            reports += baseline_reports(images, **draws)
    if args.json is not None:
        payload = [report.model_dump(mode="json") for report in reports]
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(markdown_table(reports))


def run_weighting(args: argparse.Namespace) -> None:
    from training.artifacts import RunDir
    from training.dataset_index import index_training_data
    from training.linear_head import frozen_features
    from training.population_report import markdown_table
    from training.weighting_study import weighting_reports

    recipe = RunDir(args.recipe_from).read_config().preprocessing
    images = index_training_data(args.data, args.extra_data).images
    features = frozen_features(images, recipe, args.arch, args.init_weights)
    reports = weighting_reports(
        features,
        images,
        args.external_factor,
        folds=args.folds,
        seed=args.seed,
        resamples=args.resamples,
    )
    if args.json is not None:
        payload = [report.model_dump(mode="json") for report in reports]
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(markdown_table(reports))


def run_summarize(args: argparse.Namespace) -> None:
    from training.cross_validation import summarize_out_of_fold

    try:
        summary = summarize_out_of_fold(args.cv_dir)
    except (OSError, ValueError) as error:
        raise DatasetError(str(error)) from error
    print(f"{args.cv_dir}: pooled ROC AUC {summary.pooled.roc_auc:.3f} over {summary.protocol}")


COMMANDS = {
    "index": run_index,
    "train": run_train,
    "cv": run_cv,
    "linear-head": run_linear_head,
    "linear-head-cv": run_linear_head_cv,
    "export": run_export,
    "evaluate": run_evaluate,
    "counterfactual": run_counterfactual,
    "heat-in-cell": run_heat_in_cell,
    "external": run_external,
    "adapt": run_adapt,
    "morphology": run_morphology,
    "compare": run_compare,
    "populations": run_populations,
    "weighting": run_weighting,
    "summarize": run_summarize,
    "sample-simulation": run_sample_simulation,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
