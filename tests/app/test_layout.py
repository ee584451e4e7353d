"""app/ in layers, each importing only what stands below it; HTTP stays in app/web, one caller
of the model, modules that fit on a reader's screen."""

import ast
from collections import defaultdict
from pathlib import Path

from tests.import_graph import import_loops, package_graph

APP = Path(__file__).parents[2] / "app"
MAX_LINES = 400
LAYERS = [
    {"__init__", "core", "logging_config"},
    {"records"},
    {"inference", "rendering"},
    {"settings"},
    {"cluster"},
    {"cli", "web"},
    {"main"},
]
"""Bottom first, by app's packages and top-level modules: the shared vocabulary and model
contract (core) and the log context; what is kept; serving without HTTP (which writes what is
kept) beside the tables and reports people read, each on its own; the settings, which gather
each layer's limits; archives scored on a cluster; the two front ends; the application put
together. Units of one layer stay apart. A package's `__main__` is a command and stands above
every layer."""
ENTRY_POINT = "__main__"


def modules() -> list[Path]:
    return sorted(APP.rglob("*.py"))


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def graph() -> dict[str, set[str]]:
    return package_graph(APP)


def unit_of(module: str) -> str:
    """app's package or top-level module that `module` belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(module: str) -> int | None:
    """None for a unit with no layer (the test above names it)."""
    if module.split(".")[-1] == ENTRY_POINT:
        return len(LAYERS)
    return next((i for i, layer in enumerate(LAYERS) if unit_of(module) in layer), None)


def test_every_package_and_top_level_module_has_a_layer():
    units = {unit_of(module) for module in graph()}
    assert units - set().union(*LAYERS) == {ENTRY_POINT}


def test_layers_import_only_what_stands_below_them():
    upward = defaultdict(list)
    for module, imports in graph().items():
        if module.split(".")[-1] == ENTRY_POINT:
            continue
        here = layer_of(module)
        for target in imports:
            there = layer_of(target)
            if here is None or there is None or unit_of(target) == unit_of(module):
                continue
            if there >= here:
                upward[module].append(target)
    assert dict(upward) == {}


def test_no_import_loop_anywhere_in_app():
    assert import_loops(graph()) == []


def test_http_is_imported_only_by_the_web_layer():
    outside = [
        path.relative_to(APP)
        for path in modules()
        if not path.is_relative_to(APP / "web")
        and path != APP / "main.py"
        and imported(path) & {"fastapi", "starlette"}
    ]
    assert outside == []


def test_the_model_is_called_in_one_place():
    callers = [
        path.relative_to(APP)
        for path in modules()
        if path != APP / "core" / "classifier.py"
        and ".predict(" in path.read_text(encoding="utf-8").replace("service.predict(", "")
    ]
    assert callers == [Path("inference/prediction_path.py")]


def test_no_module_is_over_400_lines():
    long = {
        str(path.relative_to(APP)): lines
        for path in modules()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_refusals_carry_no_http_status():
    source = (APP / "inference").rglob("*.py")
    assert not [p.name for p in source if "status_code" in p.read_text(encoding="utf-8")]
