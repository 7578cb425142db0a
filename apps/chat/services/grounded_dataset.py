"""Training transcripts for the grounded-answering LoRA, built from the knowledge base itself.

For each passage of a published article, a few customer questions are written from the
article's structure (its title "Flow: Subflow", the passage's heading, the membership levels
it names) with templated customer phrasings; the prompt is what the reply pipeline would
send (``prompting.build_messages`` over ``kb_search``'s passages, the passage itself put in
if retrieval missed it), and the answer is the passage's sentences closest in meaning to the
question plus the citation ``[n]``. Questions the knowledge base cannot answer (other
topics, chit-chat) teach ``prompting.UNKNOWN_REPLY``.

No leakage into the benchmark: questions come only from the templates below and the
off-topic list here; ``exclude`` drops any that equals a benchmark question after
normalisation (``bench/data/chat_questions.jsonl``, hand-written, never generated), and
the off-topic list shares no question with the benchmark's unanswerable ones.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from apps.chat.models import Chunk
from apps.chat.services.index import Passage, kb_search
from apps.chat.services.prompting import MAX_PASSAGES, UNKNOWN_REPLY, build_messages
from apps.chat.services.rendering import snippet
from apps.mlops.services.serving import model_get

ANSWER_SENTENCES = 2  # sentences per answer: the 135M model copies two well, three start to drift
MIN_SENTENCE_WORDS = 4
UNKNOWN_SHARE = 0.15  # of all examples: enough to learn the refusal without teaching it to refuse
TokenCount = Callable[[list[dict[str, str]]], int]

# Customer phrasings; {topic} is the article's subject ("return due to size"), {level} a
# membership level the passage names. Kept apart from the benchmark's hand-written questions.
TOPIC_TEMPLATES = (
    "I need help with {topic}.",
    "Can you help me with {topic}?",
    "What do you need from me for {topic}?",
    "How does {topic} work at your store?",
    "What are the rules for {topic}?",
    "hi, question about {topic}",
    "What happens with {topic}?",
    "Who do I talk to about {topic}?",
)
HEADING_TEMPLATES = {
    "steps": ("What are the steps for {topic}?", "How do you handle {topic}, step by step?"),
    "overview": ("What is {topic} about?", "Tell me about {topic}."),
    "required actions": ("What has to happen for {topic}?",),
}
LEVEL_TEMPLATES = (
    "I'm a {level} member, what about {topic}?",
    "Does being {level} change anything for {topic}?",
)
LEVELS = ("gold", "silver", "bronze", "guest")
OFF_TOPIC = (
    "Can you help me plan a wedding?",
    "What's a good name for my new cat?",
    "How tall is Mount Everest?",
    "Recommend me a movie for tonight.",
    "Can you explain quantum physics simply?",
    "How do I change a flat tyre?",
    "What's the best way to learn the guitar?",
    "Who painted the Mona Lisa?",
    "How many calories are in a banana?",
    "Can you do my maths homework?",
    "What's the exchange rate for euros today?",
    "Is it safe to swim after eating?",
    "How do I grow tomatoes on a balcony?",
    "What's the score in the cricket match?",
    "Can you book me a table at a restaurant?",
    "Should I buy a house or keep renting?",
    "How do I get rid of a cold fast?",
    "What does my horoscope say today?",
    "Tell me a fun fact about space.",
    "How do I reset my home wifi router?",
    "Which phone has the best camera?",
    "What's the population of Canada?",
    "Can you sing me a song?",
    "How do I write a cover letter?",
    "What time is it in Tokyo?",
    "Are you a robot or a person?",
    "What is the speed of light?",
    "Help me choose a birthday present for my mum.",
    "How do I make sourdough bread?",
    "What are the symptoms of the flu?",
)
_SPLIT = re.compile(r"(?<=[.!?])\s+|\s+-\s+|\s+\d+\.\s+|\s+>\s+|\s+<or>\s+")
_MARKUP = re.compile(r"\*\*|__|`")
_LIST_START = re.compile(r"^\d{1,2}[.)]\s+")
_NORMAL = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class GroundedExample:
    """One transcript: ``messages`` ends with the assistant's answer."""

    question: str
    messages: list[dict[str, str]]
    kind: str  # "answer" or "unknown"
    article_id: int | None = None


def normalised(question: str) -> str:
    """Lower case, punctuation and spacing dropped: what counts as "the same question"."""
    return _NORMAL.sub(" ", question.lower()).strip()


def passage_sentences(text: str) -> list[str]:
    """The sentences and list items of a passage, markup removed, very short pieces dropped."""
    pieces = (_LIST_START.sub("", _MARKUP.sub("", p).strip(" -:;>")) for p in _SPLIT.split(" ".join(text.split())))
    return [p if p.endswith((".", "!", "?")) else f"{p}." for p in pieces if len(p.split()) >= MIN_SENTENCE_WORDS]


def _topic(title: str) -> str:
    subject = title.split(":", 1)[1] if ":" in title else title
    words = subject.lower().rstrip(" .?").split()
    if len(words) > 1 and words[0] in ("status", "manage"):  # "Status Mystery Fee": the subject is the fee
        words = words[1:]
    return " ".join(words) or title.lower()


def passage_questions(title: str, heading: str, text: str, rng: random.Random, count: int) -> list[str]:
    """Up to ``count`` customer questions about one passage, from its title, heading and levels."""
    topic = _topic(title)
    pool = [t.format(topic=topic) for t in TOPIC_TEMPLATES]
    for key, templates in HEADING_TEMPLATES.items():
        if key in heading.lower():
            pool += [t.format(topic=topic) for t in templates] * 2  # the heading says what the passage holds
    lowered = text.lower()
    pool += [t.format(topic=topic, level=lv) for lv in LEVELS if f"{lv} member" in lowered for t in LEVEL_TEMPLATES]
    rng.shuffle(pool)
    unique = list(dict.fromkeys(pool))
    return unique[:count]


def _unit(vectors: Any) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    return array / np.maximum(np.linalg.norm(array, axis=-1, keepdims=True), 1e-8)


def answer_from_passage(question: str, text: str, number: int, *, embedder: Any) -> str:
    """The passage's ``ANSWER_SENTENCES`` sentences closest to the question, in passage order,
    then the citation ``[number]``; "" when the passage has no usable sentence."""
    sentences = passage_sentences(text)
    if not sentences:
        return ""
    vectors = _unit(embedder.embed([question, *sentences], batch_size=32))
    scores = vectors[1:] @ vectors[0]
    best = sorted(np.argsort(-scores)[:ANSWER_SENTENCES].tolist())
    return " ".join(sentences[i] for i in best) + f" [{number}]"


def _as_passage(chunk: Chunk, query: str) -> Passage:
    return Passage(
        chunk_id=chunk.pk,
        article_id=chunk.article_id,
        article_title=chunk.article.title,
        heading=chunk.heading,
        text=chunk.text,
        snippet=snippet(chunk.text, query),
        score=1.0,
        published=True,
        tags=list(chunk.article.tags or []),
    )


def _prompt_passages(chunk: Chunk, question: str, rng: random.Random) -> list[Passage]:
    """What retrieval returns for the question, with ``chunk`` among them (at a random place
    if retrieval missed it, so the citation number is not always the same)."""
    retrieved = kb_search(question, MAX_PASSAGES)
    found = [p for p in retrieved if p.chunk_id != chunk.pk][: MAX_PASSAGES - 1]
    hit = len(found) < len(retrieved)
    at = 0 if hit and rng.random() < 0.6 else rng.randint(0, len(found))  # retrieval ranks it first most often
    return [*found[:at], _as_passage(chunk, question), *found[at:]]


def _fit(
    question: str,
    passages: list[Passage],
    gold: int,
    answer_of: Callable[[int], str],
    count: TokenCount | None,
    max_tokens: int,
) -> list[dict[str, str]] | None:
    """The transcript with as many passages as fit ``max_tokens`` (the gold one always kept)."""
    kept = list(passages)
    while True:
        number = kept.index(passages[gold]) + 1
        answer = answer_of(number)
        if not answer:
            return None
        messages = [*build_messages(question, kept), {"role": "assistant", "content": answer}]
        if count is None or count(messages) <= max_tokens:
            return messages
        others = [p for p in kept if p is not passages[gold]]
        if not others:
            return None
        kept.remove(others[-1])


def grounded_examples_build(
    *,
    limit: int | None = None,
    per_passage: int = 2,
    seed: int = 0,
    exclude: Iterable[str] = (),
    token_count: TokenCount | None = None,
    max_tokens: int = 512,
    embedder: Any = None,
) -> list[GroundedExample]:
    """Transcripts for every passage of the published articles (needs the built KB index).

    Args:
        limit: at most this many examples in all (answer and unknown kept in proportion).
        per_passage: questions written for each passage.
        seed: makes the questions, passage order and sample reproducible.
        exclude: questions that must not appear (the benchmark's), compared ``normalised``.
        token_count: counts a transcript's tokens; with it, distractor passages are dropped
            until the transcript fits ``max_tokens`` (the trainer's ``max_length``).
        max_tokens: the token budget per transcript.
        embedder: picks the answer sentences; the served embedder by default.

    Raises:
        ValueError: no published passage, or ``per_passage``/``limit`` below 1.
    """
    if per_passage < 1 or (limit is not None and limit < 1):
        raise ValueError("per_passage and limit must be at least 1")
    rng = random.Random(seed)  # noqa: S311 - reproducible sampling, not a secret
    banned = {normalised(q) for q in exclude}
    embedder = embedder if embedder is not None else model_get("embedder")
    chunks = list(Chunk.objects.filter(article__published=True).select_related("article").order_by("pk"))
    if not chunks:
        raise ValueError("the knowledge base has no published passages: import articles and build the index first")
    n_answers = len(chunks) * per_passage
    n_unknown = round(n_answers * UNKNOWN_SHARE / (1 - UNKNOWN_SHARE))
    if limit is not None:
        n_unknown = min(n_unknown, round(limit * UNKNOWN_SHARE))
        n_answers = limit - n_unknown
        rng.shuffle(chunks)
    examples: list[GroundedExample] = []
    for chunk in chunks:
        for question in passage_questions(chunk.article.title, chunk.heading, chunk.text, rng, per_passage):
            if len(examples) >= n_answers:
                break
            if normalised(question) in banned:
                continue
            passages = _prompt_passages(chunk, question, rng)
            gold = next(i for i, p in enumerate(passages) if p.chunk_id == chunk.pk)

            def answer_of(number: int, question: str = question, text: str = chunk.text) -> str:
                return answer_from_passage(question, text, number, embedder=embedder)

            messages = _fit(question, passages, gold, answer_of, token_count, max_tokens)
            if messages is not None:
                examples.append(GroundedExample(question, messages, "answer", chunk.article_id))
    off_topic = [q for q in OFF_TOPIC if normalised(q) not in banned]
    rng.shuffle(off_topic)
    for question in off_topic[:n_unknown]:  # each once: repeats would only be memorised
        reply = {"role": "assistant", "content": UNKNOWN_REPLY}
        passages = kb_search(question, MAX_PASSAGES)
        while True:
            messages = [*build_messages(question, passages), reply]
            if token_count is None or token_count(messages) <= max_tokens or not passages:
                break
            passages = passages[:-1]
        examples.append(GroundedExample(question, messages, "unknown"))
    rng.shuffle(examples)
    return examples


def grounded_jsonl(examples: Iterable[GroundedExample]) -> bytes:
    """The transcripts as JSONL, one ``{"messages": [...]}`` per line (what the chat LoRA reads)."""
    lines = [json.dumps({"messages": e.messages}, ensure_ascii=False) for e in examples]
    return ("\n".join(lines) + "\n").encode("utf-8")
