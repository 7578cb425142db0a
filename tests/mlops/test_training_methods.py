"""Every fine-tuning method the ML core implements can be started from the form, the API and
the CLI; the chat LM is offered LoRA only."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from apps.mlops.forms import TrainingJobStartForm
from apps.mlops.models import DatasetTask, TrainingJob
from apps.mlops.serializers import TrainingJobCreateInputSerializer
from apps.mlops.services.training import training_job_create
from ml.finetune.peft_methods import METHODS
from tests.mlops.factories import DatasetFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_job_methods_are_the_ml_core_methods_plus_fewshot():
    assert set(TrainingJob.Method.values) == {*METHODS, "fewshot"}
    form = TrainingJobStartForm(dataset=DatasetFactory.build())
    assert {value for value, _ in form.fields["method"].choices} == set(TrainingJob.Method.values)
    field = TrainingJobCreateInputSerializer().fields["method"]
    assert set(field.choices) == set(TrainingJob.Method.values)


@pytest.mark.parametrize("method", ["adalora", "ia3", "prompt"])
def test_adapter_methods_queue_classifier_jobs(method):
    dataset = DatasetFactory()
    job = training_job_create(dataset=dataset, method=method, params={}, user=UserFactory())
    assert job.method == method


def test_chat_lm_jobs_refuse_other_adapters_and_the_form_offers_lora_only():
    chat = DatasetFactory(role="chat-lm", task=DatasetTask.CHAT_TRANSCRIPTS)
    with pytest.raises(ValidationError, match="LoRA only"):
        training_job_create(dataset=chat, method="ia3", params={}, user=UserFactory())
    form = TrainingJobStartForm(dataset=chat)
    assert [value for value, _ in form.fields["method"].choices] == ["lora"]


def test_cli_queues_an_ia3_job(tmp_path, capsys):
    data = tmp_path / "intents.csv"
    rows = [f"question {i} about {topic},{topic}" for i in range(12) for topic in ("refund", "delivery", "account")]
    data.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    call_command("train", "--dataset-file", str(data), "--role", "intent", "--method", "ia3", "--async")
    job = TrainingJob.objects.get()
    assert job.method == "ia3"
    assert "ia3 on intent" in capsys.readouterr().out
