"""Token attributions: which words made a classifier say what it said.

Importing this module stays cheap (no torch, no captum): the API imports its limits.

Two methods behind one ``explain(classifier, texts)``:

- **Integrated gradients** (captum's ``LayerIntegratedGradients`` on the word-embedding
  layer) for fine-tuned transformers (``ml.sequence_classifier.SequenceClassifier``, full or
  LoRA-merged). The baseline keeps ``[CLS]``/``[SEP]`` and replaces every other token by
  ``[PAD]``; attributions explain the target's *probability*, so they add up (up to
  ``convergence_delta``) to ``p(text) - p(baseline)``. Word pieces are summed into words.
- **Occlusion** for everything else (zero-shot and few-shot heads on frozen embeddings, int8
  transformers, whose quantised kernels have no gradients): each word is dropped in turn, all
  variants are scored in one batch, and a word's attribution is the target probability it
  takes away when it is missing.

Words are runs of letters/digits (with inner apostrophes) or single punctuation marks, with
character offsets into the text, so a page can highlight the text as it was typed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "INTEGRATED_GRADIENTS",
    "MAX_CHARS",
    "MAX_STEPS",
    "MAX_TEXTS",
    "MAX_WORDS",
    "MIN_STEPS",
    "OCCLUSION",
    "ExplainError",
    "Explanation",
    "WordAttribution",
    "aexplain",
    "explain",
    "method_for",
    "words_of",
]

INTEGRATED_GRADIENTS = "integrated-gradients"
OCCLUSION = "occlusion"
# One request explains at most 16 texts of at most 100 words (1,000 characters): occlusion
# then scores <= 1,616 variants (~3 s of MiniLM on 2 CPU threads) and integrated gradients
# runs 16 x 32 steps of forward + backward (~5 s at 40 tokens a text).
MAX_TEXTS = 16
MAX_CHARS = 1000
MAX_WORDS = 100
MIN_STEPS, DEFAULT_STEPS, MAX_STEPS = 4, 32, 128  # Gauss-Legendre points; 32 keeps |delta| < ~0.05
# Interpolated sequences per forward/backward pass: 2,048 tokens (64 tweets of 32 tokens, 16
# texts of 128) keep MiniLM's saved activations under ~300 MB.
TOKENS_PER_PASS = 2048
# Texts per integrated-gradients call, taken in length order: one text's padding stays small.
IG_CHUNK = 8
OCCLUSION_BATCH = 64
# Texts per compute-lane job in ``aexplain``: 4 texts x 32 steps are 128 forward + backward
# passes of one text (1-2 s of MiniLM on a CPU), the longest a chat stream sharing the lane
# then waits between two decode steps.
LANE_JOB_TEXTS = 4  # variants per predict_proba call; the classifier splits further on CPU

_WORD = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s]")


class ExplainError(ValueError):
    """Input that cannot be explained; ``field`` names the argument at fault."""

    def __init__(self, message: str, *, field: str = "texts") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class WordAttribution:
    """One word of a text and how much it pushed the target label's probability.

    Attributes:
        text: the word as it appears in the text.
        start: its first character offset in the text.
        end: one past its last character.
        attribution: > 0 raised the target's probability, < 0 lowered it (probability units).
    """

    text: str
    start: int
    end: int
    attribution: float


@dataclass(frozen=True)
class Explanation:
    """Why a classifier gave ``text`` its label.

    Attributes:
        text: the explained text.
        tokens: its words, in order, with attributions toward ``target``.
        label: the predicted label.
        probability: the predicted label's probability.
        target: the label the attributions explain (the predicted one unless asked).
        target_probability: the target's probability.
        method: ``integrated-gradients`` or ``occlusion``.
        convergence_delta: integrated gradients only: ``sum(attributions)`` minus
            ``p(text) - p(baseline)``; near 0 when ``steps`` sufficed.
    """

    text: str
    tokens: list[WordAttribution]
    label: str
    probability: float
    target: str
    target_probability: float
    method: str
    convergence_delta: float | None = None


def words_of(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` character spans of the words of ``text``."""
    return [m.span() for m in _WORD.finditer(text)]


def method_for(classifier: Any) -> str:
    """The method ``explain`` uses for ``classifier`` (see the module docstring)."""
    from ml.sequence_classifier import SequenceClassifier

    if isinstance(classifier, SequenceClassifier) and not classifier.is_int8:
        if not any(p.is_inference() for p in classifier.model.parameters()):
            return INTEGRATED_GRADIENTS
    return OCCLUSION


def _check(classifier: Any, texts: Sequence[str], target: str | None, steps: int) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ExplainError("texts must be a list of strings")
    texts = list(texts)
    if not texts:
        raise ExplainError("give at least one text to explain")
    if len(texts) > MAX_TEXTS:
        raise ExplainError(f"at most {MAX_TEXTS} texts per call, got {len(texts)}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ExplainError(f"text {i} is a {type(text).__name__}, not a string")
        if len(text) > MAX_CHARS:
            raise ExplainError(f"text {i} has {len(text)} characters; at most {MAX_CHARS} can be explained")
        n_words = len(words_of(text))
        if n_words == 0:
            raise ExplainError(f"text {i} has no words to explain")
        if n_words > MAX_WORDS:
            raise ExplainError(f"text {i} has {n_words} words; at most {MAX_WORDS} can be explained")
    if target is not None and target not in classifier.labels:
        raise ExplainError(f"unknown target label {target!r}; one of {list(classifier.labels)}", field="target")
    if not MIN_STEPS <= steps <= MAX_STEPS:
        raise ExplainError(f"steps must be between {MIN_STEPS} and {MAX_STEPS}, got {steps}", field="steps")
    return texts


def _chosen_method(classifier: Any, method: str | None) -> str:
    chosen = method or method_for(classifier)
    if chosen not in (INTEGRATED_GRADIENTS, OCCLUSION):
        raise ExplainError(f"unknown method {chosen!r}", field="method")
    if chosen == INTEGRATED_GRADIENTS and method_for(classifier) != INTEGRATED_GRADIENTS:
        raise ExplainError("integrated gradients needs a transformer classifier with gradients (not int8)",
                           field="method")
    return chosen


def _check_token_lengths(classifier: Any, texts: list[str]) -> None:
    """Integrated gradients reads whole texts: one longer than the model's window is refused."""
    with classifier.tokenizer_lock:
        lengths = [len(ids) for ids in classifier.tokenizer(texts, truncation=False)["input_ids"]]
    for i, n in enumerate(lengths):
        if n > classifier.max_length:
            raise ExplainError(f"text {i} is {n} tokens; this model reads at most {classifier.max_length}")


def _probabilities(classifier: Any, texts: list[str]) -> np.ndarray:
    if hasattr(classifier, "predict_proba"):
        return np.asarray(classifier.predict_proba(texts), dtype=np.float32)
    labels = list(classifier.labels)
    return np.array([[p.probs[label] for label in labels] for p in classifier.predict(texts)], dtype=np.float32)


def explain(
    classifier: Any,
    texts: Sequence[str],
    *,
    target: str | None = None,
    steps: int = DEFAULT_STEPS,
    method: str | None = None,
) -> list[Explanation]:
    """Token attributions for each text (runs on the caller's thread; see ``aexplain``).

    Args:
        classifier: any classifier of ``ml.classify`` / ``ml.sequence_classifier``.
        texts: 1..MAX_TEXTS texts, each at most MAX_CHARS characters and MAX_WORDS words.
        target: the label to explain for every text; default: each text's predicted label.
        steps: integrated-gradients steps (MIN_STEPS..MAX_STEPS); unused by occlusion.
        method: force ``occlusion`` (any classifier) or ``integrated-gradients``; default:
            ``method_for(classifier)``.

    Returns:
        One Explanation per text, in input order.

    Raises:
        ExplainError: bad texts, unknown target, steps out of range, a text longer than the
            transformer reads, or integrated gradients asked of a classifier without gradients.
    """
    texts = _check(classifier, texts, target, steps)
    chosen = _chosen_method(classifier, method)
    if chosen == INTEGRATED_GRADIENTS:
        _check_token_lengths(classifier, texts)
    labels = list(classifier.labels)
    probs = _probabilities(classifier, texts)
    predicted = probs.argmax(axis=1)
    targets = [labels.index(target) if target is not None else int(p) for p in predicted]
    spans = [words_of(text) for text in texts]
    deltas: list[float | None]
    if chosen == INTEGRATED_GRADIENTS:
        scores, delta_array = _integrated_gradients(classifier, texts, spans, targets, steps)
        deltas = [float(d) for d in delta_array]
    else:
        scores = _occlusion(classifier, texts, spans, targets, probs)
        deltas = [None] * len(texts)
    out = []
    for i, text in enumerate(texts):
        words = [WordAttribution(text[s:e], s, e, float(a)) for (s, e), a in zip(spans[i], scores[i], strict=True)]
        best = int(predicted[i])
        out.append(Explanation(
            text=text, tokens=words, label=labels[best], probability=float(probs[i, best]),
            target=labels[targets[i]], target_probability=float(probs[i, targets[i]]),
            method=chosen, convergence_delta=deltas[i],
        ))
    return out


async def aexplain(
    classifier: Any,
    texts: Sequence[str],
    *,
    target: str | None = None,
    steps: int = DEFAULT_STEPS,
    method: str | None = None,
) -> list[Explanation]:
    """``explain`` on the compute lane (async callers: ASGI views, consumers).

    The input is checked here first, so a bad request fails without queuing lane work. The
    texts go to the lane LANE_JOB_TEXTS at a time, each group its own job, so a chat stream
    sharing the lane gets a decode step in between instead of waiting for all of them.
    """
    from ml.compute_lane import default_lane

    texts = _check(classifier, texts, target, steps)
    chosen = _chosen_method(classifier, method)
    if chosen == INTEGRATED_GRADIENTS:
        _check_token_lengths(classifier, texts)
    lane = getattr(classifier, "lane", None) or default_lane()
    out: list[Explanation] = []
    for start in range(0, len(texts), LANE_JOB_TEXTS):
        group = texts[start : start + LANE_JOB_TEXTS]
        out += await lane.call(explain, classifier, group, target=target, steps=steps, method=chosen)
    return out


# -- occlusion ------------------------------------------------------------------------


def _without(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` with the given word spans cut out (the rest left as typed)."""
    parts, last = [], 0
    for start, end in sorted(spans):
        parts.append(text[last:start])
        last = end
    parts.append(text[last:])
    return "".join(parts)


def _occlusion(
    classifier: Any, texts: list[str], spans: list[list[tuple[int, int]]], targets: list[int], probs: np.ndarray
) -> list[np.ndarray]:
    variants = [_without(text, [span]) for text, text_spans in zip(texts, spans, strict=True) for span in text_spans]
    occluded = np.concatenate([
        _probabilities(classifier, variants[start : start + OCCLUSION_BATCH])
        for start in range(0, len(variants), OCCLUSION_BATCH)
    ])
    out, offset = [], 0
    for i, text_spans in enumerate(spans):
        rows = occluded[offset : offset + len(text_spans), targets[i]]
        out.append(probs[i, targets[i]] - rows)
        offset += len(text_spans)
    return out


# -- integrated gradients ---------------------------------------------------------------


def _integrated_gradients(
    classifier: Any, texts: list[str], spans: list[list[tuple[int, int]]], targets: list[int], steps: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Per-word attributions and convergence deltas, texts taken in length-sorted chunks.

    Each chunk is padded to its own longest text, so one long text does not make every
    other text pay for its padding at every step.
    """
    import torch
    from captum.attr import LayerIntegratedGradients  # imports matplotlib: ~1 s, only when used

    model = classifier.model
    # The served probabilities are temperature-scaled (``ml.calibration``); explain those.
    temperature = float(getattr(classifier, "calibration_temperature", 1.0))

    def probabilities(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(input_ids=ids, attention_mask=mask).logits.float() / temperature, dim=-1)

    lig = LayerIntegratedGradients(probabilities, model.get_input_embeddings())
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    per_word: list[np.ndarray] = [np.empty(0)] * len(texts)
    deltas = np.zeros(len(texts), dtype=np.float32)
    for start in range(0, len(order), IG_CHUNK):
        chunk = order[start : start + IG_CHUNK]
        scores, delta = _ig_chunk(classifier, lig, [texts[i] for i in chunk], [spans[i] for i in chunk],
                                  [targets[i] for i in chunk], steps)
        for j, i in enumerate(chunk):
            per_word[i], deltas[i] = scores[j], delta[j]
    return per_word, deltas


def _ig_chunk(
    classifier: Any,
    lig: Any,
    texts: list[str],
    spans: list[list[tuple[int, int]]],
    targets: list[int],
    steps: int,
) -> tuple[list[np.ndarray], np.ndarray]:
    import torch

    tokenizer = classifier.tokenizer
    device = next(classifier.model.parameters()).device
    with classifier.tokenizer_lock:
        enc = tokenizer(texts, padding=True, truncation=False, return_offsets_mapping=True,
                        return_special_tokens_mask=True, return_tensors="pt")
    lengths = enc["attention_mask"].sum(dim=1).tolist()
    input_ids = enc["input_ids"].to(device)
    attention_mask = enc["attention_mask"].to(device)
    keep = (enc["special_tokens_mask"].bool() | ~enc["attention_mask"].bool()).to(device)
    baseline = torch.where(keep, input_ids, torch.full_like(input_ids, tokenizer.pad_token_id))
    # The compute lane runs every job under inference_mode; gradients need it off.
    with torch.inference_mode(False), torch.enable_grad():
        attributions, delta = lig.attribute(
            inputs=input_ids, baselines=baseline, additional_forward_args=(attention_mask,), target=targets,
            n_steps=steps, internal_batch_size=max(1, TOKENS_PER_PASS // input_ids.shape[1]),
            return_convergence_delta=True,
        )
    per_token = attributions.sum(dim=-1).float().detach().cpu().numpy()
    offsets = enc["offset_mapping"].numpy()
    special = enc["special_tokens_mask"].numpy().astype(bool)
    per_word = []
    for i, text_spans in enumerate(spans):
        starts = np.array([s for s, _ in text_spans])
        scores = np.zeros(len(text_spans), dtype=np.float64)
        for t in range(int(lengths[i])):
            if special[i, t] or offsets[i, t, 1] <= offsets[i, t, 0]:
                continue
            word = int(np.searchsorted(starts, offsets[i, t, 0], side="right")) - 1  # the word holding it
            if word >= 0:
                scores[word] += per_token[i, t]  # word pieces add up: IG is additive
        per_word.append(scores)
    return per_word, delta.float().detach().cpu().numpy()
