"""training/ by stage, each importing only what stands below it: data and metrics, then fitting,
then evaluation (which reads what fitting wrote), then release, then the studies that choose
between models; and no module reaches a module that reaches it back."""

import ast
from collections import defaultdict
from pathlib import Path

TRAINING = Path(__file__).parents[2] / "training"
STAGES = ["data", "metrics", "fit", "evaluation", "release", "studies"]
"""Bottom first; the command line (cli.py, command_line.py) stands outside the stages."""
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(TRAINING.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def training_imports(path: Path) -> set[str]:
    """Every training module `path` imports, at the top, in a function or under TYPE_CHECKING."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return {name for name in names if name.startswith("training.")}


def graph() -> dict[str, set[str]]:
    return {module_name(p): training_imports(p) for p in sorted(TRAINING.rglob("*.py"))}


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
    edges = graph()
    loops = []
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if target not in edges:
                continue
            if state.get(target) == "open":
                loops.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert loops == []


def test_every_stage_is_a_package_and_no_module_is_over_400_lines():
    assert all((TRAINING / stage / "__init__.py").is_file() for stage in STAGES)
    long = {
        str(path.relative_to(TRAINING)): lines
        for path in TRAINING.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
