"""Token attributions (ml.explain): faithful on real sentences, bounded, and runnable on the lane.

Faithfulness: on real financial tweets (or the generated intent sample when the public set is
absent), deleting the k words with the highest attribution must lower the predicted label's
probability more than deleting k random words, on average. Checked for integrated gradients
(a MiniLM ``SequenceClassifier``) and for occlusion (a few-shot head on frozen embeddings).

The transformer's head is fitted on the frozen encoder's pooled output (seconds, instead of a
fine-tune): its gradients still flow through every encoder layer, exactly as in a fine-tuned
model, which is what integrated gradients exercises.
"""

from __future__ import annotations

import asyncio
import csv
import random
import re
from pathlib import Path

import numpy as np
import pytest

from ml import explain as ex
from ml.classify import FewShotClassifier
from ml.compute_lane import ComputeLane
from ml.sequence_classifier import SequenceClassifier

TWEETS = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "twitter_financial_news_sentiment"
SENTIMENT_NAMES = {"0": "bearish", "1": "bullish", "2": "neutral"}  # the dataset's README
N_TRAIN, N_EXPLAINED, TOP_K, RANDOM_DRAWS = 128, 16, 2, 5
URL = re.compile(r"https?://\S+")


def _read(path: Path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        rows = [(URL.sub("", r["text"]).strip(), SENTIMENT_NAMES[r["label"]]) for r in csv.DictReader(fh)]
    return [(text, label) for text, label in rows if 6 <= len(ex.words_of(text)) <= 25]


@pytest.fixture(scope="module")
def sentences() -> tuple[list[tuple[str, str]], list[str]]:
    """(training rows, texts to explain): real tweets, links removed, 6-25 words each."""
    rng = random.Random(0)
    if (TWEETS / "sent_train.csv").is_file():
        train, held_out = _read(TWEETS / "sent_train.csv"), _read(TWEETS / "sent_valid.csv")
    else:  # CI without ../shared: Trellis's own generated sample sentences
        from apps.mlops.sample_data import intent_sample_rows

        rows = [(t, label) for t, label in intent_sample_rows(400) if len(ex.words_of(t)) >= 6]
        train, held_out = rows[:300], rows[300:]
    rng.shuffle(train)
    rng.shuffle(held_out)
    return train[:N_TRAIN], [text for text, _ in held_out[:N_EXPLAINED]]


@pytest.fixture(scope="module")
def transformer(sentences) -> SequenceClassifier:
    """MiniLM reading mean-pooled states, as fine-tunes do, with its head fitted as a probe."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ml.defaults import embedder_weights
    from ml.finetune.probe_head import init_head_from_probe
    from ml.mean_pooling import use_mean_pooling

    train, _ = sentences
    names = sorted({label for _, label in train})
    tokenizer = AutoTokenizer.from_pretrained(str(embedder_weights()))
    model = AutoModelForSequenceClassification.from_pretrained(str(embedder_weights()), num_labels=len(names)).eval()
    assert use_mean_pooling(model)
    assert init_head_from_probe(model, tokenizer, [t for t, _ in train], [names.index(y) for _, y in train],
                                max_length=64, device="cpu", balanced=False, seed=0)
    return SequenceClassifier(model, tokenizer, names, max_length=128)


@pytest.fixture(scope="module")
def fewshot(sentences, embedder) -> FewShotClassifier:
    train, _ = sentences
    return FewShotClassifier.fit(embedder, [t for t, _ in train], [label for _, label in train])


def _drops(classifier, explanations: list[ex.Explanation]) -> tuple[float, float]:
    """Mean fall of the predicted label's probability: top-k words deleted vs k random words."""
    rng = random.Random(1)
    variants = []
    for e in explanations:
        spans = [(w.start, w.end) for w in e.tokens]
        top = sorted(range(len(spans)), key=lambda j: -e.tokens[j].attribution)[:TOP_K]
        variants.append(ex._without(e.text, [spans[j] for j in top]))
        variants += [ex._without(e.text, rng.sample(spans, TOP_K)) for _ in range(RANDOM_DRAWS)]
    probs = classifier.predict_proba(variants)
    top_drops, random_drops = [], []
    for i, e in enumerate(explanations):
        column = classifier.labels.index(e.label)
        rows = probs[i * (1 + RANDOM_DRAWS) : (i + 1) * (1 + RANDOM_DRAWS), column]
        top_drops.append(e.probability - rows[0])
        random_drops.append(float(np.mean(e.probability - rows[1:])))
    return float(np.mean(top_drops)), float(np.mean(random_drops))


def _check_shape(explanations: list[ex.Explanation], texts: list[str], classifier) -> None:
    assert [e.text for e in explanations] == texts
    probs = classifier.predict_proba(texts)
    for e, row in zip(explanations, probs, strict=True):
        assert [w.text for w in e.tokens] == [e.text[s:t] for s, t in ex.words_of(e.text)]
        assert e.label == classifier.labels[int(row.argmax())] == e.target
        assert e.probability == pytest.approx(float(row.max()), abs=1e-4)


def test_words_keep_offsets_into_the_text():
    text = "Don't sell $AAPL, it's up 3%!"
    assert [text[s:e] for s, e in ex.words_of(text)] == ["Don't", "sell", "$", "AAPL", ",", "it's", "up", "3",
                                                         "%", "!"]
    assert ex._without("a b c", [(2, 3)]) == "a  c"


def test_integrated_gradients_are_faithful(transformer, sentences):
    # given real sentences and a transformer classifier
    _, texts = sentences

    # when they are explained with integrated gradients, batched
    explanations = ex.explain(transformer, texts, steps=8)

    # then each word got a score, the scores add up to p(text) - p(baseline) ...
    assert {e.method for e in explanations} == {ex.INTEGRATED_GRADIENTS}
    _check_shape(explanations, texts, transformer)
    # (8 steps keep the test fast; a sharp text may miss by more, the default 32 steps by less)
    assert np.median([abs(e.convergence_delta) for e in explanations]) < 0.1
    # ... and deleting the top words lowers the prediction more than deleting random words
    top, rand = _drops(transformer, explanations)
    assert top > rand + 0.03, (top, rand)


def test_occlusion_is_faithful(fewshot, sentences):
    # given a few-shot head on frozen embeddings
    _, texts = sentences

    # when the same sentences are explained (occlusion: it has no gradients through the encoder)
    explanations = ex.explain(fewshot, texts)

    # then the words whose removal hurts most, removed together, hurt more than random ones
    assert {e.method for e in explanations} == {ex.OCCLUSION}
    assert all(e.convergence_delta is None for e in explanations)
    _check_shape(explanations, texts, fewshot)
    top, rand = _drops(fewshot, explanations)
    assert top > rand + 0.03, (top, rand)


def test_a_chosen_target_is_explained(fewshot, sentences):
    _, texts = sentences
    other = next(label for label in fewshot.labels if label != fewshot.predict(texts[:1])[0].label)

    [e] = ex.explain(fewshot, texts[:1], target=other)

    assert e.target == other and e.label != other
    assert e.target_probability == pytest.approx(float(fewshot.predict(texts[:1])[0].probs[other]), abs=1e-4)
    variants = [ex._without(e.text, [(w.start, w.end)]) for w in e.tokens]
    expected = e.target_probability - fewshot.predict_proba(variants)[:, fewshot.labels.index(other)]
    assert [w.attribution for w in e.tokens] == pytest.approx(expected.tolist(), abs=1e-5)


@pytest.mark.parametrize(
    ("texts", "kwargs", "field", "message"),
    [
        ([], {}, "texts", "at least one"),
        (["fine words"] * (ex.MAX_TEXTS + 1), {}, "texts", f"at most {ex.MAX_TEXTS} texts"),
        (["x" * (ex.MAX_CHARS + 1)], {}, "texts", "characters"),
        (["word " * (ex.MAX_WORDS + 1)], {}, "texts", "words"),
        (["  ... "[:2]], {}, "texts", "no words"),
        (["one string"][0], {}, "texts", "list of strings"),
        (["fine words"], {"target": "no-such-label"}, "target", "unknown target"),
        (["fine words"], {"steps": ex.MAX_STEPS + 1}, "steps", "steps must be"),
    ],
)
def test_bad_input_is_refused_before_any_work(fewshot, texts, kwargs, field, message):
    with pytest.raises(ex.ExplainError, match=message) as info:
        ex.explain(fewshot, texts, **kwargs)
    assert info.value.field == field


def test_a_text_longer_than_the_model_reads_is_refused(transformer):
    with pytest.raises(ex.ExplainError, match="at most 128") as info:
        ex.explain(transformer, ["antidisestablishmentarianism " * 30], steps=4)  # 30 words, ~180 pieces
    assert info.value.field == "texts"


def test_int8_transformers_fall_back_to_occlusion(transformer):
    quantized = transformer.quantized()

    assert ex.method_for(transformer) == ex.INTEGRATED_GRADIENTS
    assert ex.method_for(quantized) == ex.OCCLUSION
    with pytest.raises(ex.ExplainError, match="integrated gradients needs"):
        ex.explain(quantized, ["shares fall"], method=ex.INTEGRATED_GRADIENTS)


def test_aexplain_runs_on_the_compute_lane_under_inference_mode(transformer):
    # given a private lane (its jobs run under torch.inference_mode, like serving's)
    lane = ComputeLane("explain-test")
    transformer.lane = lane
    try:
        # when an async caller asks for integrated gradients
        [e] = asyncio.run(ex.aexplain(transformer, ["Shares plunge after the profit warning"], steps=4))
    finally:
        transformer.lane = None
        lane.shutdown()

    # then it ran there, gradients and all
    assert lane.jobs_run == 1
    assert e.method == ex.INTEGRATED_GRADIENTS and len(e.tokens) == 6
    assert any(w.attribution != 0 for w in e.tokens)


def test_aexplain_hands_the_lane_a_few_texts_at_a_time(fewshot):
    lane = ComputeLane("explain-test-groups")
    fewshot.lane = lane
    texts = ["Shares fall", "Profit rises", "Bank cuts jobs", "Oil climbs", "Dollar slips"]
    try:
        explanations = asyncio.run(ex.aexplain(fewshot, texts))
    finally:
        fewshot.lane = None
        lane.shutdown()

    assert [e.text for e in explanations] == texts
    assert lane.jobs_run == -(-len(texts) // ex.LANE_JOB_TEXTS)  # other lane work can run in between
