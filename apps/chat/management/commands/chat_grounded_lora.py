"""``manage.py chat_grounded_lora``: tune the chat LM to answer from the knowledge base.

Builds grounded-answering transcripts from the published articles
(``apps.chat.services.grounded_dataset``: questions written from each passage's title and
heading, answers taken from the passage with its citation, "I don't know" for off-topic
questions), stores them as a chat-lm Dataset and starts a LoRA TrainingJob through the ML
core's normal service, so it shows on /models/ with live progress and its version can be
evaluated and promoted like any other. ``--wait`` runs the job in this process with a
progress bar (as ``manage.py train`` does); without it the job is queued for a worker.

    manage.py chat_grounded_lora --limit 300 --epochs 1 --wait
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.management.base import CommandError, CommandParser

from apps.chat.services.grounded_dataset import grounded_examples_build, grounded_jsonl
from apps.mlops.management.commands._lookup import user_get
from apps.mlops.management.commands.train import Command as TrainCommand
from apps.mlops.models import ModelRole, TrainingJob
from apps.mlops.services.datasets import DatasetRejected, dataset_create
from apps.mlops.services.serving import model_get
from apps.mlops.services.training import training_job_create, training_params_clean

BENCH_QUESTIONS = Path(settings.BASE_DIR) / "bench" / "data" / "chat_questions.jsonl"
MAX_TOKENS = 512  # the chat LoRA's largest max_length (ml.finetune.params); transcripts are built to fit


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CommandError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise CommandError(f"expected a number of at least 1, got {value}")
    return value


class Command(TrainCommand):
    help = "Builds grounded-answering transcripts from the knowledge base and LoRA-tunes the chat LM on them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--epochs", type=_positive, default=1, help="Passes over the transcripts (default 1).")
        parser.add_argument("--limit", type=_positive, default=300, help="Transcripts in all (default 300).")
        parser.add_argument("--per-passage", type=_positive, default=2, help="Questions per passage (default 2).")
        parser.add_argument("--learning-rate", type=float, help="LoRA learning rate (default: the chat LM's).")
        parser.add_argument("--max-steps", type=_positive, help="Stop after this many optimizer steps (quick runs).")
        parser.add_argument("--seed", type=int, default=0, help="Seed of the questions and the sample.")
        parser.add_argument(
            "--exclude",
            type=Path,
            help="JSONL of benchmark questions kept out of training "
            "(default: bench/data/chat_questions.jsonl when present).",
        )
        parser.add_argument("--save", type=Path, help="Also write the transcripts to this JSONL file.")
        parser.add_argument("--user", help="User recorded as the dataset's and job's creator.")
        parser.add_argument("--wait", action="store_true", help="Run the job here and show its progress.")
        parser.add_argument("--poll-interval", type=float, default=0.5, help="Seconds between progress reads.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = user_get(options["user"])
        params: dict[str, Any] = {"epochs": options["epochs"], "max_length": MAX_TOKENS, "seed": options["seed"]}
        if options["learning_rate"] is not None:
            params["learning_rate"] = options["learning_rate"]
        if options["max_steps"] is not None:
            params["max_steps"] = options["max_steps"]
        try:  # bad parameters fail before anything is built or stored
            training_params_clean(params, "chat-lm")
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        excluded = self._excluded(options["exclude"])

        def token_count(messages: list[dict[str, str]]) -> int:  # the served chat LM's own template
            return len(model_get("chat-lm").tokenizer.apply_chat_template(messages, tokenize=True))

        try:
            examples = grounded_examples_build(
                limit=options["limit"],
                per_passage=options["per_passage"],
                seed=options["seed"],
                exclude=excluded,
                token_count=token_count,
                max_tokens=MAX_TOKENS,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        answers = sum(e.kind == "answer" for e in examples)
        self.stdout.write(
            f'{len(examples)} transcripts: {answers} grounded answers, {len(examples) - answers} "I don\'t know" '
            f"({len(excluded)} benchmark questions excluded)"
        )
        raw = grounded_jsonl(examples)
        if options["save"]:
            options["save"].write_bytes(raw)
        name = f"grounded-answers-seed{options['seed']}-{len(examples)}.jsonl"
        try:
            dataset = dataset_create(
                uploaded_file=ContentFile(raw, name=name), name=name, role=ModelRole.CHAT_LM, user=user
            )
        except DatasetRejected as exc:
            raise CommandError(f"the transcripts failed validation: {exc}") from exc
        self.stdout.write(f"dataset #{dataset.pk} {dataset.name}: {dataset.rows} transcripts")
        try:
            job = training_job_create(dataset=dataset, method=TrainingJob.Method.LORA, params=params, user=user)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(f"job #{job.pk}: lora on chat-lm, params {job.params}")
        if not options["wait"]:
            follow = f"queued; a Celery worker runs it. Follow it at /models/jobs/{job.pk}/."
            self.stdout.write(self.style.SUCCESS(follow))
            return
        job = self._run_and_follow(job, user, options)
        self._report(job)

    @staticmethod
    def _excluded(path: Path | None) -> list[str]:
        import json

        if path is None:
            path = BENCH_QUESTIONS
            if not path.is_file():
                return []
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        questions = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                questions.append(str(json.loads(line)["question"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise CommandError(f'{path} line {lineno}: expected JSON with a "question" ({exc})') from exc
        return questions
