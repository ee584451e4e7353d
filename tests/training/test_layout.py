"""training/ by stage, each importing only what stands below it: data and metrics, then fitting,
then evaluation (which reads what fitting wrote), then release, then the studies that choose
between models; and no module reaches a module that reaches it back."""

from collections import defaultdict
from pathlib import Path

from tests.import_graph import import_loops, package_graph

TRAINING = Path(__file__).parents[2] / "training"
STAGES = ["data", "metrics", "fit", "evaluation", "release", "studies"]
"""Bottom first; the command line (cli.py, command_line.py) stands outside the stages."""
MAX_LINES = 400


def graph() -> dict[str, set[str]]:
    return package_graph(TRAINING)


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in STAGES else None


def test_stages_import_only_what_stands_below_them():
    upward = defaultdict(list)
    for module, imports in graph().items():
        stage = stage_of(module)
        if stage is None:
            continue
        for target in imports:
            target_stage = stage_of(target)
            if target_stage is not None and STAGES.index(target_stage) > STAGES.index(stage):
                upward[module].append(target)
    assert dict(upward) == {}


def test_no_import_loop_anywhere_in_training():
    assert import_loops(graph()) == []


def test_every_stage_is_a_package_and_no_module_is_over_400_lines():
    assert all((TRAINING / stage / "__init__.py").is_file() for stage in STAGES)
    long = {
        str(path.relative_to(TRAINING)): lines
        for path in TRAINING.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
