"""Training parameters declared once: default, bounds and help of every knob a job may set.

``TrainParams`` is the single source: ``ClassifierTrainArgs`` and ``ChatLoraArgs`` inherit
it (the chat LM overrides a few defaults in ``CHAT_LM_DEFAULTS``), and the dashboard form,
the API serializer and the command-line flags are all derived from ``param_specs(task)``,
the way Hugging Face's ``HfArgumentParser`` derives a command line from a dataclass.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CHAT_LM_DEFAULTS", "CHAT_LM_LR", "TASKS", "ParamSpec", "TrainParams", "add_cli_flags",
           "chat_lm_field", "clean_params", "param_specs"]

TASKS = ("classifier", "chat-lm")
BOTH = frozenset(TASKS)
CLASSIFIER = frozenset({"classifier"})
CHAT_LM_LR = 2e-4  # LoRA on the 135M chat LM: 1e-4..5e-4 is stable; 2e-4 learns a style in ~100 steps


@dataclass(frozen=True)
class ParamSpec:
    """One knob as a form, serializer or flag needs it.

    Attributes:
        name: the field name (``snake_case``; the flag is ``--kebab-case``).
        kind: ``int``, ``float`` or ``str``.
        default: the default of the task the spec was made for (None: decided by the trainer).
        low: smallest allowed value (numbers), or None.
        high: largest allowed value (numbers), or None.
        choices: the allowed values (strings), or None.
        help: one sentence for the user, with units.
    """

    name: str
    kind: type
    default: Any
    low: float | None
    high: float | None
    choices: tuple[str, ...] | None
    help: str

    def check(self, value: Any) -> Any:
        """``value`` converted to ``kind`` and checked against the bounds.

        Raises:
            ValueError: the value has the wrong type or is out of bounds.
        """
        if self.kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{self.name} must be a whole number, not {value!r}")
        if isinstance(value, bool):
            raise ValueError(f"{self.name} must be a {self.kind.__name__}, not {value!r}")
        try:
            converted = self.kind(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.name} must be a {self.kind.__name__}, not {value!r}") from exc
        if self.choices is not None and converted not in self.choices:
            raise ValueError(f"{self.name} must be one of {', '.join(self.choices)}, not {converted!r}")
        if self.low is not None and self.high is not None and not self.low <= converted <= self.high:
            raise ValueError(f"{self.name} must be between {self.low:g} and {self.high:g}, not {converted!r}")
        return converted


def _knob(default: Any, *, help: str, low: float | None = None, high: float | None = None,  # noqa: A002
          choices: tuple[str, ...] | None = None, kind: type | None = None,
          tasks: frozenset[str] = BOTH) -> Any:
    kind = kind or type(default)
    return field(default=default, metadata={"knob": {"low": low, "high": high, "choices": choices,
                                                     "help": help, "kind": kind, "tasks": tasks}})


@dataclass(kw_only=True)
class TrainParams:
    """The knobs of a training run a user may set (defaults are the classifier's).

    Every field's metadata holds its bounds and help; see ``param_specs``.
    """

    epochs: int = _knob(3, low=1, high=50, help="Passes over the training data; early stopping may end sooner.")
    learning_rate: float | None = _knob(
        None, low=1e-6, high=1e-1, kind=float,
        help="Peak AdamW learning rate. Empty: the method's default (classifiers: 5e-5 full, "
             "5e-4 LoRA/AdaLoRA, 3e-3 IA3, 3e-2 prompt tuning; chat LM LoRA: 2e-4).")
    batch_size: int = _knob(16, low=1, high=256, help="Rows per optimizer step (summed over all processes).")
    max_length: int = _knob(64, low=8, high=512, help="Tokens per row; longer rows are truncated.")
    max_train_rows: int | None = _knob(None, low=10, high=10_000_000, kind=int, tasks=CLASSIFIER,
                                       help="Cap of the training split, for quick runs (empty: all rows).")
    max_steps: int | None = _knob(None, low=1, high=1_000_000, kind=int,
                                  help="Stop after this many optimizer steps (empty: all epochs).")
    seed: int = _knob(42, low=0, high=2**31 - 1, help="Seeds the split, the batch order and the initial weights.")
    early_stopping_patience: int = _knob(
        2, low=1, high=50, help="Epochs without a better dev score before training stops.")
    checkpoint_every_steps: int = _knob(
        200, low=0, high=1_000_000, help="Mid-epoch checkpoint interval in steps (0: only at epoch ends).")
    warmup_ratio: float = _knob(0.1, low=0.0, high=0.5,
                                help="Share of the steps over which the learning rate rises linearly from 0.")
    # cosine: same dev macro-F1 as linear on the 1,500-tweet slice (0.699 vs 0.696) but a
    # higher macro-F1 on 800 held-out validation tweets (0.731 vs 0.688); one seed each.
    lr_schedule: str = _knob("cosine", choices=("linear", "cosine"),
                             help="Decay after the warmup: linear or cosine down to 0 at the last step.")
    # 10: the head starts from random weights while the encoder is pretrained; on 1,500
    # financial tweets (MiniLM, full, 2 epochs) it raised dev macro-F1 from 0.677 to 0.696 at
    # no cost. A head-only epoch first gained a little more (0.709) for one more epoch, so it
    # stays opt-in (see the measurements).
    head_lr_multiplier: float = _knob(
        10.0, low=1.0, high=100.0, tasks=CLASSIFIER,
        help="The new classification head learns this many times faster than the encoder (1: same rate).")
    head_only_epochs: int = _knob(
        0, low=0, high=10, tasks=CLASSIFIER,
        help="Epochs that train only the head (encoder frozen) before everything trains.")
    # mean: BANKING77 full fine-tune (MiniLM, 4 epochs, same recipe) dev macro-F1 0.928 vs 0.922
    # from [CLS] (0.861 vs 0.832 after one epoch), test accuracy 0.929 vs 0.927; see ml.mean_pooling.
    pooling: str = _knob("mean", choices=("mean", "cls"), tasks=CLASSIFIER,
                         help="Sentence vector the head reads: the mean of the token states (what "
                              "sentence-transformers encoders were trained to give) or BERT's [CLS] pooler.")
    # random: chosen on dev scores (MiniLM, full, 4 epochs, mean pooling): BANKING77 dev macro-F1
    # 0.928 random vs 0.922 probe-initialised (test 0.929 vs 0.932), tweets 0.836 vs 0.828.
    # The probe head starts right (train loss ~0) and the first epochs of encoder updates undo it.
    head_init: str = _knob("random", choices=("probe", "random"), tasks=CLASSIFIER,
                           help="Start the head as a logistic-regression probe fitted on the frozen encoder's "
                                "sentence vectors (then fine-tune everything), or from random weights.")
    label_smoothing: float = _knob(
        0.0, low=0.0, high=0.5, tasks=CLASSIFIER,
        help="Share of each row's target spread over the other labels (0: plain cross-entropy); "
             "guards a fine-tune against over-confident, over-fitted heads.")
    # 1 (off): BANKING77, MiniLM, default recipe, alpha 0.5: test accuracy 0.931 / 0.931 / 0.925 / 0.924
    # on seeds 42 / 7 / 1 / 2 against the plain fine-tune's 0.929 / 0.924 / 0.932 / 0.926 (same mean).
    wise_alpha: float = _knob(
        1.0, low=0.0, high=1.0, tasks=CLASSIFIER,
        help="WiSE-FT (full method only): the encoder ends at this share of its fine-tuned weights plus the "
             "rest of the base model's, and the head is refitted on it as a logistic regression (1: off).")
    # 0.1: early stopping, calibration and the abstention threshold read the dev rows. 0 trains on
    # every row (as the frozen probe does): BANKING77, MiniLM, 5 epochs, see the README's figures.
    dev_fraction: float = _knob(
        0.1, low=0.0, high=0.5, tasks=CLASSIFIER,
        help="Share of the rows held out as the dev split (early stopping, calibration, the abstention "
             "threshold); 0 trains on every row for all the epochs, without calibration or abstention.")
    contrastive_pairs: int = _knob(
        0, low=0, high=200_000, tasks=CLASSIFIER,
        help="Sentence pairs of a SetFit-style contrastive stage before the head (0: off).")
    processes: int = _knob(
        1, low=1, high=64,
        help="Data-parallel processes (one per GPU on a GPU machine; CPU processes otherwise).")


# The chat LM's own defaults: a 135M causal LM reading whole conversations.
CHAT_LM_DEFAULTS: dict[str, Any] = {"batch_size": 4, "max_length": 512}
_CHAT_LM_HELP = {"learning_rate": "Peak AdamW learning rate of the LoRA adapter. Empty: 2e-4.",
                 "batch_size": "Conversations per optimizer step (summed over all processes).",
                 "max_length": "Tokens per conversation; longer ones are cut at the end."}


def chat_lm_field(name: str) -> Any:
    """A ``TrainParams`` field re-declared with the chat LM's default (same bounds and help)."""
    base = TrainParams.__dataclass_fields__[name]
    return field(default=CHAT_LM_DEFAULTS[name], metadata=base.metadata)


def param_specs(task: str) -> list[ParamSpec]:
    """The knobs that apply to ``task`` (``classifier`` or ``chat-lm``), in declaration order."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    specs = []
    for f in dataclasses.fields(TrainParams):
        knob = f.metadata["knob"]
        if task not in knob["tasks"]:
            continue
        default = CHAT_LM_DEFAULTS.get(f.name, f.default) if task == "chat-lm" else f.default
        text = _CHAT_LM_HELP.get(f.name, knob["help"]) if task == "chat-lm" else knob["help"]
        specs.append(ParamSpec(f.name, knob["kind"], default, knob["low"], knob["high"], knob["choices"], text))
    return specs


def clean_params(params: dict[str, Any], task: str) -> dict[str, Any]:
    """Checks user-given parameters of ``task``; empty values are left to the defaults.

    Raises:
        ValueError: an unknown name (or one of the other task), a bad type or an
            out-of-bounds value (the message names the parameter).
    """
    specs = {s.name: s for s in param_specs(task)}
    unknown = sorted(set(params) - set(specs))
    if unknown:
        raise ValueError(f"unknown parameters for {task}: {', '.join(unknown)}")
    return {k: specs[k].check(v) for k, v in params.items() if v is not None and v != ""}


def add_cli_flags(parser: argparse.ArgumentParser, task: str, *, defaults: bool = False) -> None:
    """Adds one ``--kebab-case`` flag per knob of ``task``.

    Args:
        parser: the parser to extend.
        task: ``classifier`` or ``chat-lm``.
        defaults: True sets each flag's default to the task's default; False leaves unset
            flags None (so a service can tell "not given" from "given the default").
    """
    for spec in param_specs(task):
        bounds = f" [{spec.low:g}..{spec.high:g}]" if spec.low is not None and spec.high is not None else ""
        shown = f" Default: {spec.default}." if spec.default is not None else ""
        parser.add_argument(f"--{spec.name.replace('_', '-')}", dest=spec.name, type=spec.kind,
                            choices=spec.choices, default=spec.default if defaults else None,
                            help=f"{spec.help}{bounds}{shown}")
