"""A model's error rates in one sentence: the one set of rates every reader sees.

The page, the printed report, the model selector, the model card's box and the README all state
the same rates, written by `error_rates_sentence` from the card: the rates a sample's blast share
is corrected with (app/core/blast_share.py's `held_out_counts`: on people the model never saw
where the card has them, else out of fold on its own training people), with the counts behind
them. `python -m app.core.error_rates` writes the default model's sentence into README.md.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from app.core.blast_share import RATES_UNSEEN, held_out_counts
from app.core.manifest import ModelManifest, load_manifest

OUT_OF_FOLD = "out of fold"
README_BLOCK = re.compile(
    r"(<!-- error-rates: (?P<model>[a-z0-9._-]+) -->\n)(?P<sentence>.*?)(\n<!-- /error-rates -->)",
    re.DOTALL,
)


def percent(share: float) -> str:
    return f"{100 * share:.1f}%"


def error_rates_sentence(manifest: ModelManifest) -> str:
    counts = held_out_counts(manifest)
    if counts is None:
        return "Its card records no error rates on people it never saw."
    people = len(counts.subject_sensitivities) + len(counts.subject_specificities)
    if counts.rates == RATES_UNSEEN and OUT_OF_FOLD in counts.source:
        where = (
            "people of other acquisition batches, each cell scored by a model that never saw "
            "that person"
        )
    elif counts.rates == RATES_UNSEEN:
        where = "people outside its training data"
    else:
        where = (
            "held-out people of its own training data, each cell scored by a model that never "
            "saw that person (the card has no rates on new patients)"
        )
    ill = counts.true_positives + counts.false_negatives
    healthy = counts.true_negatives + counts.false_positives
    return (
        f"Error rates on {f'{people} ' if people else ''}{where} ({ill + healthy:,} cells): "
        f"sensitivity {percent(counts.sensitivity)} ({counts.true_positives:,} of {ill:,} ALL "
        f"cells flagged), specificity {percent(counts.specificity)} ({counts.true_negatives:,} "
        f"of {healthy:,} normal cells not flagged)."
    )


def with_readme_sentences(readme: str, store: Path) -> str:
    """README.md with each `<!-- error-rates: MODEL -->` block holding that model's sentence."""

    def sentence(match: re.Match[str]) -> str:
        manifest = load_manifest(store / match["model"])
        return f"{match[1]}{error_rates_sentence(manifest)}{match[4]}"

    return README_BLOCK.sub(sentence, readme)


def main() -> None:
    root = Path(__file__).resolve().parents[2]
    readme = root / "README.md"
    store = root / "model_store"
    readme.write_text(with_readme_sentences(readme.read_text(encoding="utf-8"), store))
    sys.stdout.write(f"wrote the error-rate sentences into {readme}\n")


if __name__ == "__main__":
    main()
