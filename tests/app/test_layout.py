"""Issue 29's layout, kept: HTTP stays in app/web, one caller of the model, modules that fit on
a reader's screen."""

import ast
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
