"""No path of the machine that built or serves LeukoLens in a bundled card or in an answer: they
travel to other labs, and a folder name can name a person or a machine."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
# Absolute paths under a top folder that exists on this machine (so /api/v1/... is not one).
LOCAL_TOPS = sorted(p.name for p in Path("/").iterdir() if p.is_dir() and p.name != "api")
LOCAL_PATH = re.compile(rf"(?<![\w.~:/-])/(?:{'|'.join(map(re.escape, LOCAL_TOPS))})/")


def local_paths_in(text: str, *also: Path) -> list[str]:
    found = [m.group(0) for m in LOCAL_PATH.finditer(text)]
    return found + [str(path) for path in also if str(path) in text]


def test_bundled_cards_and_store_hold_no_local_path():
    for card in sorted(ROOT.glob("model_store/**/*.json")):
        text = card.read_text(encoding="utf-8")
        assert not local_paths_in(text, ROOT), (card, local_paths_in(text, ROOT))


def test_answers_hold_no_local_path(bundled_client, real_cell_png, tmp_path):
    client = bundled_client
    answers = [
        client.get("/readyz"),
        client.get("/api/v1/models"),
        client.post(
            "/api/v1/predict?sample_id=LAB-1&explain=true&views=true",
            files={"file": ("cell.png", real_cell_png)},
        ),
        client.post(
            "/api/v1/predict/batch?sample_id=LAB-1&format=csv",
            files=[("files", ("a.png", real_cell_png)), ("files", ("b.png", b"not an image"))],
        ),
        client.post("/api/v1/predict", files={"file": ("x.png", b"\x89PNG broken")}),
        client.get("/api/v1/samples/LAB-1"),
        client.get("/api/v1/samples"),
        client.get("/api/v1/models/no-such-model"),
    ]
    for model_id in client.get("/api/v1/models").json()["models"]:
        answers.append(client.get(f"/api/v1/models/{model_id['id']}"))
    for answer in answers:
        assert answer.status_code < 500, answer.text
        text = answer.text
        if answer.headers.get("content-type", "").startswith("application/json"):
            text = json.dumps(answer.json(), ensure_ascii=False)
        found = local_paths_in(text, ROOT, tmp_path)
        assert not found, (answer.request.url, found)
