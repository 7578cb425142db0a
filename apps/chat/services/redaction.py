"""Personal data out of customer text before it is stored or shown to the LM: ``redact``.

Presidio's analyzer finds e-mail addresses, phone numbers, card numbers (Luhn-checked), IBANs
(checksum), IP addresses and people's names (spaCy NER, the bundled ``en_core_web_sm``: never a
download), and its anonymizer replaces each with a tag such as ``<EMAIL>``. Only the recognizers
named here run, not Presidio's whole default registry, so dates, URLs, US driver licences and
the like are left alone: a customer's "I ordered on 3 May" must still reach the reply pipeline.

Order and account numbers are left as they are on purpose: agents need them to help, and the
KB answers never quote them, so masking them would cost service without protecting much.

spaCy's small model calls some capitalised shop words people ("Gold", "Silver", a product's
brand); ``NOT_NAMES`` and the checks in ``_looks_like_name`` drop those before replacing.
The engine loads once per process, on the first call, behind a lock: about 1 s in a process
that already imported transformers (Presidio imports it when it is installed; on its own that
import takes 5-20 s on a busy 2-core box). spaCy is numpy-only, so redaction does not use the
torch compute lane; a message costs 4-15 ms (NER on one short text), one at a time per process.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# Presidio entity -> the tag that replaces it.
TAGS: dict[str, str] = {
    "EMAIL_ADDRESS": "<EMAIL>",
    "PHONE_NUMBER": "<PHONE>",
    "CREDIT_CARD": "<CARD>",
    "IBAN_CODE": "<IBAN>",
    "IP_ADDRESS": "<IP>",
    "PERSON": "<NAME>",
}
# Below this Presidio score a match is not replaced. Phone numbers score 0.4 (phonenumbers
# parsed them), validated cards / IBANs / e-mails 1.0, spaCy names 0.85; the weak unvalidated
# patterns (a 16-digit number failing Luhn scores 0) stay below it.
SCORE_THRESHOLD = 0.35
# Words and phrases spaCy's small model tags as PERSON in customer-service text but that
# are shop vocabulary: membership tiers, brands and products from the ABCD store, greetings.
NOT_NAMES = frozenset(
    """
    gold silver bronze platinum guest member premium prime
    amazon google apple paypal visa mastercard amex venmo ups fedex usps dhl
    calvin klein tommy hilfiger michael kors guess jeans jacket boots shirt
    hi hello hey thanks thank bye please sir madam agent bot assistant
    """.split()
)
# en_core_web_sm's NER labels; all but PERSON are ignored (and not logged as "unmapped").
_SPACY_LABELS = frozenset(
    "CARDINAL DATE EVENT FAC GPE LANGUAGE LAW LOC MONEY NORP ORDINAL ORG PERCENT PERSON PRODUCT "
    "QUANTITY TIME WORK_OF_ART".split()
)
# A number right after these words is an order/account/tracking reference, not a phone or card
# number, even when it has a phone number's digits ("order number 1234567890") or passes Luhn
# (Bitext's "purchase 113542617735902"): it stays for the agent.
_REFERENCE_BEFORE = re.compile(
    r"(?:order|oredr|oder|ordr|purchase|tracking|invoice|account|acct|reference|ref|confirmation|receipt|sku|item|"
    r"zip|postal|post|membership|member|customer|case|ticket|serial|model|product|id)"
    r"(?:\s+(?:number|no|num|code|id))?\s*[.:#]*\s*(?:is\s+|was\s+)?$",
    re.IGNORECASE,
)
_PRODUCT_AFTER = re.compile(
    r"\s+(?:account|plan|member|membership|tier|subscription|card|level|status|package|edition|version)s?\b",
    re.IGNORECASE,
)
_PLACE_BEFORE = re.compile(
    r"\b(?:ship|shipp|deliver|deliveri|send|sent|live|living|located|based|mov|order|orde|frolm)\w*"
    r"(?:\s+(?:it|them|this|that|items?|orders?|products?|packages?))?\s+(?:to|from|frolm|in|into|at)\s+$",
    re.IGNORECASE,
)
_EMAIL_DOMAIN = re.compile(r"@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}$")
_TAG_PATTERN = re.compile("<(?:" + "|".join(t.strip("<>") for t in TAGS.values()) + ")>")


@dataclass(frozen=True)
class Redacted:
    """The text with personal data replaced, and how many of each tag went in."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.counts)


class _Engines:
    """Presidio's analyzer and anonymizer, built once per process on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None
        self.load_seconds: float | None = None

    def get(self) -> tuple[Any, Any]:
        loaded = self._loaded
        if loaded is None:
            with self._lock:
                if self._loaded is None:
                    started = time.perf_counter()
                    self._loaded = _engines_build()
                    self.load_seconds = time.perf_counter() - started
                    log.info("redaction engine loaded in %.2f s", self.load_seconds)
                loaded = self._loaded
        return loaded


def _engines_build() -> tuple[Any, Any]:
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
    )
    from presidio_anonymizer import AnonymizerEngine

    from ml.defaults import spacy_weights

    class OfflineEmailRecognizer(EmailRecognizer):
        """Presidio's check asks tldextract for a known suffix, which fetches the public suffix
        list over the network and lets "maria@shop.example" or a typo ("@gmail.con") through.
        For privacy any dotted domain ending in letters counts."""

        def validate_result(self, pattern_text: str) -> bool:
            return bool(_EMAIL_DOMAIN.search(pattern_text))

    nlp_engine = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            # A path, so Presidio's "download the model if it is not a package" never triggers.
            "models": [{"lang_code": "en", "model_name": str(spacy_weights())}],
            "ner_model_configuration": {
                "model_to_presidio_entity_mapping": {"PERSON": "PERSON", "PER": "PERSON"},
                "labels_to_ignore": sorted(_SPACY_LABELS - {"PERSON"}),
            },
        }
    ).create_engine()
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (
        OfflineEmailRecognizer(),
        PhoneRecognizer(),
        CreditCardRecognizer(),
        IbanRecognizer(),
        IpRecognizer(),
        SpacyRecognizer(supported_entities=["PERSON"]),
    ):
        registry.add_recognizer(recognizer)
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])
    return analyzer, AnonymizerEngine()


_engines = _Engines()
_analyze_lock = threading.Lock()


def redaction_load_seconds() -> float | None:
    """How long this process took to build the engine (None before the first ``redact``)."""
    return _engines.load_seconds


def _looks_like_name(text: str, start: int, end: int) -> bool:
    """Whether a PERSON span from spaCy is plausibly a person's name, not shop vocabulary."""
    span = text[start:end]
    words = [w for w in re.split(r"[^A-Za-z'\-]+", span) if w]
    if not words or _TAG_PATTERN.search(span):
        return False
    if all(w.lower().strip("'") in NOT_NAMES for w in words):
        return False
    # A name is written with a capital; the small model sometimes tags lower-case words.
    if not any(w[0].isupper() for w in words):
        return False
    if len(words) == 1:
        # "the Freemium account", "a Gold plan": a product or tier; "ship to Valencia": a place.
        if _PRODUCT_AFTER.match(text[end : end + 20]) or _PLACE_BEFORE.search(text[max(0, start - 40) : start]):
            return False
    return True


def _keep(text: str, entity: str, start: int, end: int) -> bool:
    if entity == "PERSON":
        return _looks_like_name(text, start, end)
    if entity in ("PHONE_NUMBER", "CREDIT_CARD"):
        return not _REFERENCE_BEFORE.search(text[max(0, start - 40) : start])
    return True


def _operators() -> dict[str, Any]:
    from presidio_anonymizer.entities import OperatorConfig

    return {entity: OperatorConfig("replace", {"new_value": tag}) for entity, tag in TAGS.items()}


def redact(text: str) -> Redacted:
    """``text`` with e-mails, phones, cards, IBANs, IP addresses and names replaced by tags.

    Text with no letter or digit in it comes back unchanged without loading the engine.
    Already redacted text comes back unchanged (the tags are not names).
    """
    if not any(c.isalnum() for c in text):
        return Redacted(text, {})
    analyzer, anonymizer = _engines.get()
    with _analyze_lock:  # spaCy adds to its shared string store while parsing: one text at a time
        found = analyzer.analyze(text=text, language="en", entities=list(TAGS), score_threshold=SCORE_THRESHOLD)
    kept = [r for r in found if _keep(text, r.entity_type, r.start, r.end)]
    if not kept:
        return Redacted(text, {})
    result = anonymizer.anonymize(text=text, analyzer_results=kept, operators=_operators())
    counts: dict[str, int] = {}
    for item in result.items:
        tag = TAGS[item.entity_type]
        counts[tag] = counts.get(tag, 0) + 1
    return Redacted(result.text, counts)
