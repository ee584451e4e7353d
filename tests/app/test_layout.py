"""Issue 29's layout, kept: HTTP stays in app/web, one caller of the model, modules that fit on
a reader's screen."""

import ast
import re
from pathlib import Path

APP = Path(__file__).parents[2] / "app"
MAX_LINES = 400


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
