"""Parameter-efficient fine-tuning methods (peft) behind one small interface.

``full`` trains every weight; the others freeze the encoder and train a few extra tensors
plus the classifier head, which peft keeps as a ``modules_to_save`` copy inside the adapter
so the saved artifact is small and complete:

- ``lora``: low-rank updates of the attention query/value projections (Hu et al. 2021).
- ``adalora``: LoRA whose rank budget is re-allocated between layers during training
  (Zhang et al. 2023); the loop must call ``after_optimizer_step`` every step.
- ``ia3``: learned rescaling vectors on keys, values and the feed-forward output (Liu et
  al. 2022); the fewest trainable weights.
- ``prompt``: ``num_virtual_tokens`` trainable input embeddings prepended to every text
  (Lester et al. 2021); cannot be merged into the base weights.

The training loop uses ``wrap_for_training`` before building the optimizer, adds
``auxiliary_loss`` to its loss (AdaLoRA's orthogonality term; None for the others) and calls
``after_optimizer_step`` between ``optimizer.step()`` and ``zero_grad()``. The manifest's
``extra["adapter"]`` holds ``adapter_config_record``; the registry loader calls
``load_for_inference``.
"""

from __future__ import annotations

import enum
import logging
import warnings
from pathlib import Path
from typing import Any

import torch

from ml.artifacts import ArtifactError, Manifest

__all__ = ["ADAPTER_METHODS", "DEFAULT_LR", "METHODS", "adapter_config_record", "after_optimizer_step",
           "auxiliary_loss", "finalize_for_save", "is_adapter_method", "load_for_inference", "method_of",
           "wrap_for_training"]

log = logging.getLogger(__name__)

METHODS = ("full", "lora", "adalora", "ia3", "prompt")  # "full" = no adapter
ADAPTER_METHODS = METHODS[1:]
# Peak AdamW rates. The fewer weights a method trains, the larger the step it needs: LoRA
# trains ~0.3% of MiniLM's weights (10x full's rate), IA3's scaling vectors start at 1.0
# and move little per step (peft's examples use 3e-3), prompt embeddings are inputs to a
# frozen network (Lester et al. use 0.3 with Adafactor; 3e-2 with AdamW is stable here).
DEFAULT_LR = {"full": 5e-5, "lora": 5e-4, "adalora": 5e-4, "ia3": 3e-3, "prompt": 3e-2}

# Module names per encoder family (``config.model_type``). MiniLM is a BERT; all-mpnet-
# base-v2 names its projections q/k/v/o. IA3 "feedforward" modules scale their input
# rather than their output, as in the paper.
_LORA_TARGETS = {"bert": ["query", "value"], "mpnet": ["q", "v"]}
_IA3_TARGETS = {"bert": ["key", "value", "output.dense"], "mpnet": ["k", "v", "output.dense"]}
_IA3_FEEDFORWARD = {"bert": ["output.dense"], "mpnet": ["output.dense"]}
# Trained and saved with every adapter: the classification head and, on BERT with
# ``pooling="cls"``, the pooler (a dense layer on [CLS] that sentence-transformers' mean
# pooling never trained).
_HEAD_MODULES = ("classifier", "score", "pooler")
_TASKS = {"seq-cls": "SEQ_CLS", "causal-lm": "CAUSAL_LM"}
_PEFT_TYPE_TO_METHOD = {"LORA": "lora", "ADALORA": "adalora", "IA3": "ia3", "PROMPT_TUNING": "prompt"}
PROMPT_INIT_TEXT = "Read this text and decide which class it belongs to."


def is_adapter_method(method: str) -> bool:
    """Whether ``method`` trains a peft adapter (everything but ``full``)."""
    return method in ADAPTER_METHODS


def _targets(model: torch.nn.Module, table: dict[str, list[str]], method: str) -> list[str]:
    model_type = getattr(getattr(model, "config", None), "model_type", "")
    if model_type not in table:
        raise ValueError(f"{method}: no default target modules for model_type {model_type!r}; "
                         f"pass target_modules (known: {', '.join(sorted(table))})")
    return list(table[model_type])


def _head_modules(model: torch.nn.Module, task: str) -> list[str] | None:
    if task != "seq-cls":
        return None
    # Modules with weights only: a mean-pooling "pooler" (ml.mean_pooling) has none to save.
    present = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
               if next(module.parameters(), None) is not None}
    return [name for name in _HEAD_MODULES if name in present]


def _peft_config(model: torch.nn.Module, method: str, *, task: str, r: int, alpha: int, dropout: float,
                 total_steps: int | None, num_virtual_tokens: int,
                 target_modules: list[str] | None) -> Any:
    import peft

    task_type = getattr(peft.TaskType, _TASKS[task])
    heads = _head_modules(model, task)
    if method == "lora":
        return peft.LoraConfig(task_type=task_type, r=r, lora_alpha=alpha, lora_dropout=dropout,
                               target_modules=target_modules or _targets(model, _LORA_TARGETS, method),
                               modules_to_save=heads)
    if method == "adalora":
        if not total_steps or total_steps < 1:
            raise ValueError("adalora needs total_steps >= 1 (its rank budget follows a schedule)")
        # Budget schedule: 10% of the steps at the initial rank, prune towards r until 80%,
        # then keep the final ranks fixed. int() floors keep tinit < total - tfinal for any total.
        return peft.AdaLoraConfig(
            task_type=task_type, init_r=max(r + 4, int(r * 1.5)), target_r=r, lora_alpha=alpha,
            lora_dropout=dropout, total_step=total_steps, tinit=int(total_steps * 0.1),
            tfinal=int(total_steps * 0.2), deltaT=max(1, total_steps // 50),
            target_modules=target_modules or _targets(model, _LORA_TARGETS, method),
            modules_to_save=heads)
    if method == "ia3":
        targets = target_modules or _targets(model, _IA3_TARGETS, method)
        model_type = str(getattr(getattr(model, "config", None), "model_type", ""))
        feedforward = [m for m in _IA3_FEEDFORWARD.get(model_type, []) if m in targets]
        return peft.IA3Config(task_type=task_type, target_modules=targets,
                              feedforward_modules=feedforward, modules_to_save=heads)
    if method == "prompt":
        base_dir = getattr(getattr(model, "config", None), "_name_or_path", "")
        text_init = bool(base_dir) and Path(base_dir).is_dir()
        # Text initialisation starts the virtual tokens at real word embeddings (Lester et al.
        # found it beats random vectors); it reads the tokenizer from the local base folder.
        return peft.PromptTuningConfig(
            task_type=task_type, num_virtual_tokens=num_virtual_tokens,
            prompt_tuning_init=peft.PromptTuningInit.TEXT if text_init else peft.PromptTuningInit.RANDOM,
            prompt_tuning_init_text=PROMPT_INIT_TEXT if text_init else None,
            tokenizer_name_or_path=base_dir if text_init else None, modules_to_save=heads)
    raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")


def wrap_for_training(model: torch.nn.Module, method: str, *, task: str = "seq-cls", r: int = 8,
                      alpha: int = 16, dropout: float = 0.1, total_steps: int | None = None,
                      num_virtual_tokens: int = 20,
                      target_modules: list[str] | None = None) -> torch.nn.Module:
    """Wraps a freshly loaded model for training with ``method``.

    Args:
        model: a transformers model (``AutoModelForSequenceClassification`` for ``seq-cls``,
            ``AutoModelForCausalLM`` for ``causal-lm``).
        method: one of METHODS; ``full`` returns ``model`` unchanged.
        task: ``seq-cls`` (the head is trained and saved with the adapter) or ``causal-lm``.
        r: LoRA rank (AdaLoRA: the target average rank; it starts at 1.5 r).
        alpha: LoRA scaling numerator (the update is scaled by alpha / r).
        dropout: dropout on the LoRA input.
        total_steps: optimizer steps of the whole run; required by ``adalora``.
        num_virtual_tokens: prompt length of ``prompt`` (it adds to every sequence's length).
        target_modules: module names to adapt; default by ``config.model_type`` (BERT, MPNet).

    Returns:
        The model to train (a ``PeftModel`` for adapter methods).

    Raises:
        ValueError: unknown method or task, ``adalora`` without ``total_steps``, or no
            default targets for this model family.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if task not in _TASKS:
        raise ValueError(f"task must be one of {', '.join(_TASKS)}, not {task!r}")
    if method == "full":
        return model
    from peft import get_peft_model

    config = _peft_config(model, method, task=task, r=r, alpha=alpha, dropout=dropout,
                          total_steps=total_steps, num_virtual_tokens=num_virtual_tokens,
                          target_modules=target_modules)
    with warnings.catch_warnings():
        # peft warns that AdaLoRA ignores ``r`` (it uses init_r/target_r, set above).
        warnings.filterwarnings("ignore", message=".*`r` is not used in AdaLora.*")
        return get_peft_model(model, config)  # type: ignore[arg-type]  # any transformers model


def method_of(model: torch.nn.Module) -> str:
    """The METHODS name of a wrapped (or plain = ``full``) model."""
    config = _active_config(model)
    if config is None:
        return "full"
    peft_type = str(getattr(config.peft_type, "value", config.peft_type))
    if peft_type not in _PEFT_TYPE_TO_METHOD:
        raise ValueError(f"unsupported peft type {peft_type!r}")
    return _PEFT_TYPE_TO_METHOD[peft_type]


def _active_config(model: torch.nn.Module) -> Any:
    configs = getattr(model, "peft_config", None)
    if not configs:
        return None
    return configs[getattr(model, "active_adapter", "default")]


def after_optimizer_step(model: torch.nn.Module, step: int) -> None:
    """Per-step hook: AdaLoRA re-allocates its rank budget; a no-op for the other methods.

    Call it after ``optimizer.step()`` and before ``optimizer.zero_grad()`` (AdaLoRA scores
    each rank by its weights times their gradients).

    Args:
        model: the model ``wrap_for_training`` returned.
        step: the optimizer step just taken, counted from 0 over the whole run (resumes too).
    """
    config = _active_config(model)
    if config is None or method_of(model) != "adalora":
        return
    adalora: Any = model.base_model  # peft's AdaLoraModel
    if config.rank_pattern is None and step > config.total_step - config.tfinal:
        # Resumed from a checkpoint taken after the final allocation: the rank pattern lived
        # only in memory, but the ranks it pruned are the zeros of the saved lora_E vectors.
        config.rank_pattern = _rank_pattern_from_weights(adalora.model)
    adalora.update_and_allocate(step)


def _rank_pattern_from_weights(inner: torch.nn.Module) -> dict[str, list[bool]]:
    return {name: (param.detach().reshape(-1) != 0).tolist()
            for name, param in inner.named_parameters() if "lora_E" in name}


def finalize_for_save(model: torch.nn.Module) -> None:
    """Makes the weights agree with what ``save_pretrained`` will write; call it before evaluating.

    AdaLoRA saves only the ranks its final pattern kept; if the best epoch's weights were
    restored from before that pattern was applied, this zeroes the pruned ranks so the
    model evaluated is the model saved. A no-op for the other methods.

    Args:
        model: the model ``wrap_for_training`` returned, with its final weights loaded.
    """
    config = _active_config(model)
    if config is not None and method_of(model) == "adalora" and config.rank_pattern:
        adalora: Any = model.base_model  # peft's AdaLoraModel
        adalora.rankallocator.mask_using_rank_pattern(adalora.model, config.rank_pattern)


def auxiliary_loss(model: torch.nn.Module) -> torch.Tensor | None:
    """AdaLoRA's orthogonality regulariser (weighted), to add to the loss; None otherwise.

    peft adds it only when the model computes the loss itself (``labels=`` passed); a loop
    that computes its own loss from the logits adds this instead.

    Args:
        model: the model ``wrap_for_training`` returned.

    Returns:
        A scalar tensor on the model's device, or None.
    """
    config = _active_config(model)
    if config is None or method_of(model) != "adalora":
        return None
    terms = []
    for name, param in model.named_parameters():
        if param.requires_grad and ("lora_A" in name or "lora_B" in name):
            cov = param @ param.T if "lora_A" in name else param.T @ param
            eye = torch.eye(*cov.shape, device=cov.device, dtype=cov.dtype)
            terms.append(torch.linalg.matrix_norm(cov - eye))
    if not terms:
        return None
    return config.orth_reg_weight * torch.stack(terms).mean()


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def adapter_config_record(model: torch.nn.Module) -> dict[str, Any]:
    """A JSON-ready description of how ``model`` trains, for ``manifest.extra["adapter"]``.

    Args:
        model: a plain model (``full``) or one ``wrap_for_training`` returned.

    Returns:
        ``method``, ``trainable_params``, ``total_params`` and, for adapters, ``peft_type``
        and the peft ``config`` (rank pattern, targets, modules saved with it).
    """
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    record: dict[str, Any] = {"method": method_of(model), "trainable_params": trainable,
                              "total_params": total}
    config = _active_config(model)
    if config is not None:
        data = config.to_dict()
        for key in ("base_model_name_or_path", "tokenizer_name_or_path", "revision"):
            data.pop(key, None)  # machine paths; the manifest's base_model says where the base is
        record["peft_type"] = _jsonable(config.peft_type)
        record["config"] = _jsonable(data)
    return record


def load_for_inference(path: str | Path, manifest: Manifest, base_model: torch.nn.Module) -> torch.nn.Module:
    """Puts a saved adapter (any of ADAPTER_METHODS) on its base model for inference.

    LoRA, AdaLoRA and IA3 are merged into the base weights, so inference costs what the
    plain model costs and int8 quantisation sees ordinary Linear layers; prompt tuning
    cannot be merged and stays a ``PeftModel`` (its forward prepends the virtual tokens).

    Args:
        path: the artifact directory (``adapter_config.json`` + ``adapter_model.safetensors``).
        manifest: its manifest (for messages; ``extra.method`` if recorded).
        base_model: the base model, freshly loaded with the artifact's label count.

    Returns:
        The model in eval mode.

    Raises:
        ArtifactError: the directory holds no adapter.
    """
    from peft import PeftModel

    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise ArtifactError(f"{manifest.kind} at {path}: no adapter_config.json")
    model = PeftModel.from_pretrained(base_model, str(path))
    if _active_config(model).is_prompt_learning:
        return model.eval()
    return model.merge_and_unload().eval()
