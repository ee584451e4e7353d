"""A synthetic lab's records, written straight into the records' tables: samples of scored cells
over weeks or months, reviewers' decisions (some changed), repeats, withdrawals and
not-assessable answers, with the model's calls drawn at chosen sensitivity and specificity.

For the local-performance benchmark (200,000 cells) and the page's screenshot; rows are
inserted with their own times, as the server would have written them over those weeks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.records import records_db, sample_summaries, scoring_outcomes

DAY = 86_400.0


@dataclass(frozen=True)
class SeededLab:
    samples: int
    cells_per_sample: int
    start: float
    days: float
    model_id: str = "brightness"
    model_version: str = "1"
    threshold: float = 0.5
    sensitivity: float = 0.9
    specificity: float = 0.6
    blast_share: float = 0.4
    """Share of ALL cells in a patient's sample; half of the samples are healthy donors'."""
    reviewed_share: float = 0.8
    seed: int = 0
    sensitivity_drift: float = 0.0
    """Change of the sensitivity from the first day to the last (a model getting worse)."""


def sha(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def seed(engine: Engine, lab: SeededLab) -> dict[str, int]:
    """Write the lab's rows; returns how many of each were written."""
    rng = np.random.default_rng(lab.seed)
    predictions, decisions, withdrawals = [], [], []
    for s in range(lab.samples):
        sample_id = f"LAB-{lab.seed}-{s:05d}"
        began = lab.start + rng.uniform(0, lab.days) * DAY
        progress = (began - lab.start) / (lab.days * DAY)
        sensitivity = lab.sensitivity + lab.sensitivity_drift * progress
        patient = s % 2 == 0
        for c in range(lab.cells_per_sample):
            when = began + c
            truth = "ALL" if patient and rng.random() < lab.blast_share else "HEM"
            right = rng.random() < (sensitivity if truth == "ALL" else lab.specificity)
            label = truth if right else ("HEM" if truth == "ALL" else "ALL")
            near = rng.random() < 0.1
            state = "indeterminate" if near else f"suggests_{'all' if label == 'ALL' else 'normal'}"
            assessable = rng.random() > 0.02
            image = sha(sample_id, c)
            request = f"req-{lab.seed}-{s}-{c // 64}"
            client = f"upload-{lab.seed}-{s}-{c // 64}"
            predictions.append(
                {
                    "time": when,
                    "sample_id": sample_id,
                    "request_id": request,
                    "image_sha256": image,
                    "model_id": lab.model_id,
                    "model_version": lab.model_version,
                    "probability_all": 0.8 if label == "ALL" else 0.2,
                    "label": label,
                    "state": state if assessable else "not_assessable",
                    "assessable": int(assessable),
                    "client_request_id": client,
                    "repeat_of": None,
                    "threshold": lab.threshold,
                    "tta": 0,
                    "warnings": "",
                }
            )
            if rng.random() < 0.01:  # the same bytes again: a repeat
                predictions.append(
                    {
                        **predictions[-1],
                        "time": when + 1,
                        "request_id": f"{request}-again",
                        "repeat_of": request,
                    }
                )
            if rng.random() < lab.reviewed_share:
                said = "not_assessable" if not assessable or rng.random() < 0.01 else truth
                decision = {
                    "time": when + 60,
                    "sample_id": sample_id,
                    "request_id": request,
                    "image_sha256": image,
                    "decision": said,
                    "reviewer": f"Dr {'ABC'[s % 3]}",
                    "comment": "",
                    "reviewer_source": "free_text",
                }
                if rng.random() < 0.02:  # first decided otherwise, then corrected
                    wrong = "HEM" if said == "ALL" else "ALL"
                    decisions.append({**decision, "decision": wrong, "time": when + 30})
                decisions.append(decision)
        if rng.random() < 0.01:  # a cancelled upload of a few more cells
            client = f"upload-{lab.seed}-{s}-cancelled"
            for c in range(3):
                predictions.append(
                    {
                        **predictions[-1],
                        "image_sha256": sha(sample_id, "cancelled", c),
                        "request_id": f"req-{lab.seed}-{s}-cancelled",
                        "client_request_id": client,
                    }
                )
            withdrawals.append(
                {"time": began + 5, "sample_id": sample_id, "client_request_id": client}
            )
    with engine.begin() as connection:
        for table, rows in (
            (records_db.sample_predictions, predictions),
            (records_db.review_decisions, decisions),
            (records_db.sample_withdrawals, withdrawals),
        ):
            for start in range(0, len(rows), 20_000):
                connection.execute(table.insert(), rows[start : start + 20_000])
        # What the server keeps beside the rows it writes (derived tables, filled as the
        # migrations fill them for records written before them).
        scoring_outcomes.rebuild(connection)
        sample_summaries.rebuild(connection)
    return {
        "scorings": len(predictions),
        "decisions": len(decisions),
        "withdrawals": len(withdrawals),
    }


def migrated_engine(url: str) -> Engine:
    engine = records_db.create_engine(url)
    records_db.migrate(engine)
    return engine


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table.name: int(
                connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            )
            for table in (records_db.sample_predictions, records_db.review_decisions)
        }
