"""app/ in layers, each importing only what stands below it; HTTP stays in app/web, one caller
of the model, modules that fit on a reader's screen."""

import ast
import re
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


PREDICTION_TABLES = {"predictions", "sample_predictions"}
SQL_INSERT = re.compile(r"\bINSERT\s+INTO\s+(\w+)", re.IGNORECASE)


def prediction_table_inserts(path: Path) -> list[str]:
    """Where a module inserts into the audit or the samples' cells: `<table>.insert()` or a
    dialect's `insert(<table>)` on records_db's tables (or a module alias of one), or SQL."""
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def names_a_table(node: ast.AST) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr in PREDICTION_TABLES) or (
            isinstance(node, ast.Name) and node.id in aliases | PREDICTION_TABLES
        )

    aliases = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr in PREDICTION_TABLES
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and "insert" in ast.unparse(node.func):
            function = node.func
            receiver = function.value if isinstance(function, ast.Attribute) else None
            if any(names_a_table(part) for part in [receiver, *node.args] if part is not None):
                found.append(f"line {node.lineno}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            tables = {match.lower() for match in SQL_INSERT.findall(node.value)}
            if tables & PREDICTION_TABLES:
                found.append(f"line {node.lineno} (SQL)")
    return found


def test_one_writer_writes_prediction_records():
    """A prediction's audit row and its sample cell are one record, written in one transaction
    by one module: nothing else in app/ inserts into either table."""
    writers = {
        str(path.relative_to(APP)): lines
        for path in modules()
        if (lines := prediction_table_inserts(path))
    }
    assert list(writers) == ["records/prediction_rows.py"], writers
