"""Fine-tuned transformer classifiers (full or LoRA artifacts), with an int8 CPU path.

The registry loads ``hf-classifier`` and ``lora-classifier`` artifacts through
``load_sequence_classifier``; predictions share ``ml.classify.Prediction``.
"""

from __future__ import annotations

import copy
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ml import devices
from ml.artifacts import ArtifactError, Manifest
from ml.classify import (
    CPU_MICRO_BATCH,
    DEFAULT_MAX_LENGTH,
    CalibratedClassifier,
    _check_texts,
    configure_calibration,
)
from ml.defaults import weights_dir
from ml.mean_pooling import masked_mean

if TYPE_CHECKING:
    from ml.registry import Registry

def _select_qengine() -> str:
    """Picks the int8 kernel library once per process (weights are packed for it).

    oneDNN uses VNNI/AMX int8 instructions where the CPU has them: measured 2.2-2.4x over
    fp32 for MiniLM at batch 64 on a Sapphire Rapids core, against 1.6-1.9x for the
    default x86/fbgemm kernels. ``TRELLIS_QENGINE`` overrides the choice.
    """
    supported = torch.backends.quantized.supported_engines
    wanted = os.environ.get("TRELLIS_QENGINE", "")
    if not wanted and "onednn" in supported:
        try:
            flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="ignore")
        except OSError:
            flags = ""
        wanted = "onednn" if "vnni" in flags else ""
    if wanted in supported and torch.backends.quantized.engine != wanted:
        torch.backends.quantized.engine = wanted
    return torch.backends.quantized.engine


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantisation of a classifier's encoder Linear layers (CPU only).

    Weights become int8 per output channel; activations are quantised on the fly. The
    head (``classifier``/``pooler``/``score``) stays fp32: it is < 0.1% of the compute and
    keeping it exact keeps the argmax closest to fp32. ``torch.ao.quantization`` warns that
    it is deprecated in favour of torchao (not installed); it still works in torch 2.13.

    Args:
        model: an fp32 model on CPU; changed in place.

    Returns:
        The quantised model.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    _select_qengine()
    head = ("classifier", "pooler", "score")
    spec: dict[str | type[torch.nn.Module], Any] = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not any(part in head for part in name.split("."))
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)


class SequenceClassifier(CalibratedClassifier):
    """A fine-tuned ``AutoModelForSequenceClassification`` with batched, sorted inference.

    Args:
        model: the model, already on ``device_info.device`` and in eval mode.
        tokenizer: its tokenizer.
        labels: label names in head order.
        max_length: texts are truncated to this many tokens.
        device_info: where the model runs; defaults to ``ml.devices.current()``.
        is_int8: whether ``model`` is already dynamically quantised.
        version: the artifact version, for logs and stats.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        labels: Sequence[str],
        *,
        max_length: int = DEFAULT_MAX_LENGTH,
        device_info: devices.DeviceInfo | None = None,
        is_int8: bool = False,
        version: str = "",
    ) -> None:
        num_labels = getattr(getattr(model, "config", None), "num_labels", len(labels))
        if num_labels != len(labels):
            raise ValueError(f"model head has {num_labels} outputs but {len(labels)} labels were given")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.max_length = max_length
        self.device_info = device_info or devices.current()
        self.is_int8 = is_int8
        self.version = version
        # A fast tokenizer shared by threads can fail with "Already borrowed" when its
        # padding/truncation state is touched concurrently; tokenising is ~0.1 ms a text.
        # Callers that tokenise with ``self.tokenizer`` themselves (ml.explain) hold it too.
        self.tokenizer_lock = threading.Lock()

    def logits_and_features(
        self, texts: Sequence[str], *, batch_size: int = 64, with_features: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits ``(len(texts), len(labels))`` float32 in input order, and optionally features.

        Texts are sorted by length and each batch is padded to its own longest text, so
        64 headlines cost ~64 x 40 tokens instead of 64 x ``max_length``. The features
        (for kNN abstention) are the mask-averaged last hidden states, unit length.

        Args:
            texts: the texts.
            batch_size: most texts per forward pass (64 x 128 tokens keeps MiniLM
                activations under ~100 MB); on CPU passes hold at most CPU_MICRO_BATCH.
            with_features: also return the features.
        """
        _check_texts(texts, batch_size)
        n = len(texts)
        logits_out = np.empty((n, len(self.labels)), dtype=np.float32)
        features_out: np.ndarray | None = None
        if n == 0:
            return logits_out, (np.empty((0, 0), dtype=np.float32) if with_features else None)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        device = self.device_info.device
        step = batch_size if self.device_info.is_gpu or CPU_MICRO_BATCH < 1 else min(batch_size, CPU_MICRO_BATCH)
        with devices.inference_context(self.device_info):
            for start in range(0, n, step):
                idx = order[start : start + step]
                with self.tokenizer_lock:
                    enc = self.tokenizer(
                        [texts[i] for i in idx],
                        padding=True,
                        truncation=True,
                        max_length=self.max_length,
                        return_tensors="pt",
                    )
                enc = {k: v.to(device) for k, v in enc.items()}
                output = self.model(**enc, output_hidden_states=with_features)
                logits_out[idx] = output.logits.float().cpu().numpy()
                if with_features:
                    mask = enc["attention_mask"]
                    # Prompt tuning prepends virtual tokens: pool over the text's own positions.
                    pooled = masked_mean(output.hidden_states[-1][:, -mask.shape[1]:].float(), mask)
                    pooled = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
                    if features_out is None:
                        features_out = np.empty((n, pooled.shape[1]), dtype=np.float32)
                    features_out[idx] = pooled
        return logits_out, features_out

    def quantized(self) -> SequenceClassifier:
        """An int8 copy on CPU (about 2x faster there); this classifier is left as it is.

        Returns:
            A new SequenceClassifier sharing the tokenizer and labels.
        """
        if self.is_int8:
            return self
        model = copy.deepcopy(self.model).to("cpu", dtype=torch.float32)
        int8 = SequenceClassifier(
            quantize_int8(model),
            self.tokenizer,
            self.labels,
            max_length=self.max_length,
            device_info=_cpu_fp32(),
            is_int8=True,
            version=self.version,
        )
        int8.calibration_temperature, int8.abstention = self.calibration_temperature, self.abstention
        return int8

    def __repr__(self) -> str:
        precision = "int8" if self.is_int8 else str(self.device_info.dtype).removeprefix("torch.")
        return f"SequenceClassifier(labels={self.labels}, device={self.device_info.device!r}, {precision})"


def _cpu_fp32() -> devices.DeviceInfo:
    # Quantised kernels take fp32 activations: no autocast even if TRELLIS_CPU_BF16 is set.
    return devices.DeviceInfo("cpu", torch.float32, None, devices.current().threads)


def _wants_int8(manifest: Manifest, info: devices.DeviceInfo) -> bool:
    if info.is_gpu:
        return False  # dynamic quantisation kernels are CPU-only; GPUs run fp16/bf16
    env = os.environ.get("TRELLIS_INT8", "")
    if env in {"0", "1"}:
        return env == "1"
    return bool(manifest.extra.get("quantize", False))


def _apply_manifest_pooling(model: torch.nn.Module, path: Path, manifest: Manifest) -> None:
    """The pooling the artifact was trained with (``extra.pooling``; older artifacts: ``cls``)."""
    from ml.mean_pooling import apply_pooling

    try:
        apply_pooling(model, str(manifest.extra.get("pooling", "cls")))
    except ValueError as exc:
        raise ArtifactError(f"{manifest.kind} at {path}: {exc}") from exc


def _load_lora_model(path: Path, manifest: Manifest, labels: list[str]) -> torch.nn.Module:
    """The base model with the artifact's adapter (LoRA, AdaLoRA, IA3 or prompt tuning)."""
    from transformers import AutoModelForSequenceClassification

    from ml.finetune.peft_methods import load_for_inference

    base = Path(manifest.base_model) if manifest.base_model else None
    if base is None or not base.is_dir():
        raise ArtifactError(f"lora-classifier at {path}: base_model {manifest.base_model!r} is not a local directory")
    model = AutoModelForSequenceClassification.from_pretrained(  # nosec B615  # `base`: checked local directory
        str(base),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    _apply_manifest_pooling(model, path, manifest)  # before the adapter: the modules it was saved with
    # The head was trained as a ``modules_to_save`` copy inside the adapter; merging folds
    # the adapter into the base weights (all but prompt tuning) so inference costs the same
    # as a plain model.
    return load_for_inference(path, manifest, model)


def load_sequence_classifier(path: Path, manifest: Manifest, registry: Registry) -> SequenceClassifier:
    """Registry loader for ``hf-classifier`` and ``lora-classifier`` artifacts.

    int8 is used on CPU when ``TRELLIS_INT8=1`` or ``manifest.extra["quantize"]`` is true
    (``TRELLIS_INT8=0`` turns it off whatever the manifest says).

    Args:
        path: the artifact directory.
        manifest: its manifest; ``labels`` in head order, ``extra.max_length`` optional.
        registry: unused; part of the loader signature.

    Returns:
        The loaded classifier.
    """
    del registry
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    info = devices.current()
    labels = list(manifest.labels)
    if manifest.kind == "lora-classifier":
        if not labels:
            raise ArtifactError(f"lora-classifier at {path} has no labels in its manifest")
        model = _load_lora_model(path, manifest, labels)
        has_tokenizer = (path / "tokenizer_config.json").is_file()
        tokenizer_dir = str(path if has_tokenizer else manifest.base_model)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)  # nosec B615  # local folders (base checked above)
    else:
        source = str(weights_dir(path, manifest))
        model = AutoModelForSequenceClassification.from_pretrained(source)  # nosec B615  # local artifact folder
        _apply_manifest_pooling(model, path, manifest)
        tokenizer = AutoTokenizer.from_pretrained(source)  # nosec B615  # local artifact folder, not a hub id
        if not labels:
            id2label = model.config.id2label
            labels = [id2label[i] for i in range(model.config.num_labels)]
    is_int8 = _wants_int8(manifest, info)
    if is_int8:
        model, info = quantize_int8(model.eval()), _cpu_fp32()
    else:
        model.to(info.device, dtype=info.dtype)
    max_length = int(manifest.extra.get("max_length", DEFAULT_MAX_LENGTH))
    classifier = SequenceClassifier(
        model, tokenizer, labels, max_length=max_length, device_info=info, is_int8=is_int8, version=manifest.version
    )
    configure_calibration(classifier, path, manifest)
    return classifier


# -- embedding-based classifiers -------------------------------------------------------
