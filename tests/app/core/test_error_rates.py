"""One set of error rates, in one sentence, written from the card."""

from pathlib import Path

from app.core.blast_share import held_out_counts
from app.core.error_rates import README_BLOCK, error_rates_sentence, with_readme_sentences
from app.core.manifest import Evaluation, load_manifest
from app.core.model_registry import StoreIndex
from app.settings import bundled_model_store

ROOT = Path(__file__).parents[3]


def test_the_sentence_states_the_cards_counts_the_share_is_corrected_with():
    store = bundled_model_store()
    manifest = load_manifest(store / StoreIndex.read(store).default)
    counts = held_out_counts(manifest)
    sentence = error_rates_sentence(manifest)
    ill = counts.true_positives + counts.false_negatives
    healthy = counts.true_negatives + counts.false_positives
    assert f"sensitivity {100 * counts.sensitivity:.1f}% " in sentence
    assert f"({counts.true_positives:,} of {ill:,} ALL cells flagged)" in sentence
    assert f"specificity {100 * counts.specificity:.1f}% " in sentence
    assert f"({counts.true_negatives:,} of {healthy:,} normal cells not flagged)" in sentence
    people = len(counts.subject_sensitivities) + len(counts.subject_specificities)
    assert sentence.startswith(f"Error rates on {people} people of other acquisition batches")


def test_a_card_without_rates_on_new_people_says_which_it_has(brightness_model_dir):
    manifest = load_manifest(brightness_model_dir)
    assert error_rates_sentence(manifest) == (
        "Its card records no error rates on people it never saw."
    )
    held_out = Evaluation(
        protocol="out-of-fold predictions of a test cross-validation, at the served threshold",
        metrics={"threshold": 0.5, "confusion_matrix": [[750, 250], [200, 800]]},
    )
    sentence = error_rates_sentence(manifest.model_copy(update={"evaluations": [held_out]}))
    assert sentence == (
        "Error rates on held-out people of its own training data, each cell scored by a model "
        "that never saw that person (the card has no rates on new patients) (2,000 cells): "
        "sensitivity 80.0% (800 of 1,000 ALL cells flagged), specificity 75.0% (750 of 1,000 "
        "normal cells not flagged)."
    )


def test_the_readme_states_the_default_models_sentence_from_its_card():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = list(README_BLOCK.finditer(readme))
    store = bundled_model_store()
    assert [block["model"] for block in blocks] == [StoreIndex.read(store).default]
    assert blocks[0]["sentence"] == error_rates_sentence(load_manifest(store / blocks[0]["model"]))
    assert with_readme_sentences(readme, store) == readme  # `python -m app.core.error_rates`


def test_the_readme_block_is_rewritten_from_the_card():
    model = "efficientnet-lite0-linear-128-cell"
    text = f"x\n<!-- error-rates: {model} -->\nold\n<!-- /error-rates -->\n"
    sentence = error_rates_sentence(load_manifest(bundled_model_store() / model))
    assert with_readme_sentences(text, bundled_model_store()) == (
        f"x\n<!-- error-rates: {model} -->\n{sentence}\n<!-- /error-rates -->\n"
    )
