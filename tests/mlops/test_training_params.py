"""Training parameters are declared once (``ml.finetune.params``); form, API and CLI follow them."""

from __future__ import annotations

import os

import pytest
import torch
from django.core.exceptions import ValidationError

from apps.mlops.forms import TrainingJobStartForm
from apps.mlops.management.commands.train import Command as TrainCommand
from apps.mlops.models import DatasetTask
from apps.mlops.serializers import TrainingJobCreateInputSerializer
from apps.mlops.services.training import training_job_create
from ml.finetune.chat_lora import ChatLoraArgs
from ml.finetune.classifier_args import ClassifierTrainArgs
from ml.finetune.params import TrainParams, clean_params, param_specs
from tests.mlops.factories import DatasetFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_each_task_form_prefills_the_defaults_its_trainer_uses():
    # given a classification dataset and a chat-transcript dataset
    classifier_form = TrainingJobStartForm(dataset=DatasetFactory.build())
    chat_form = TrainingJobStartForm(dataset=DatasetFactory.build(role="chat-lm", task=DatasetTask.CHAT_TRANSCRIPTS))

    # then each form pre-fills what the trainer of its task would use anyway
    classifier_defaults = ClassifierTrainArgs(data=[], role="intent", output_dir="x")
    chat_defaults = ChatLoraArgs(data="d", base_dir="b", output_dir="o")
    assert classifier_form.fields["batch_size"].initial == classifier_defaults.batch_size == 16
    assert chat_form.fields["batch_size"].initial == chat_defaults.batch_size == 4
    assert chat_form.fields["max_length"].initial == chat_defaults.max_length == 512
    # and the chat LM's learning-rate help names its own default, which is what it trains with
    assert "2e-4" in chat_form.fields["learning_rate"].help_text
    assert chat_defaults.lr == 2e-4
    assert "5e-5" in classifier_form.fields["learning_rate"].help_text
    # and knobs that only classifiers have are not offered for the chat LM
    assert "head_lr_multiplier" in classifier_form.fields
    assert "head_lr_multiplier" not in chat_form.fields
    assert "max_train_rows" not in chat_form.fields


def test_form_serializer_and_cli_carry_the_declared_bounds():
    # given the declared knobs
    specs = {s.name: s for s in param_specs("classifier")}
    assert set(specs) == set(TrainParams.__dataclass_fields__)

    # then the form and the serializer refuse a value past a declared bound, naming the field
    too_big = {"method": "lora", "batch_size": int(specs["batch_size"].high) + 1}
    form = TrainingJobStartForm(data=too_big, dataset=DatasetFactory.build())
    assert not form.is_valid()
    assert "batch_size" in form.errors
    serializer = TrainingJobCreateInputSerializer(data={"dataset": 1, **too_big, "lr_schedule": "step"})
    assert not serializer.is_valid()
    assert {"batch_size", "lr_schedule"} <= set(serializer.errors)
    # and the command line has one flag per knob
    parser = TrainCommand().create_parser("manage.py", "train")
    options = parser.parse_args(["--dataset-file", "f.csv", "--role", "intent", "--processes", "2",
                                 "--head-only-epochs", "1", "--lr-schedule", "cosine"])
    assert (options.processes, options.head_only_epochs, options.lr_schedule) == (2, 1, "cosine")
    assert options.epochs is None  # unset: the trainer's default


def test_the_service_checks_parameters_against_the_task_before_any_work():
    user = UserFactory(roles=["admin"])
    chat = DatasetFactory(role="chat-lm", task=DatasetTask.CHAT_TRANSCRIPTS)

    # a classifier-only knob on a chat-LM job, and more processes than the machine can run
    with pytest.raises(ValidationError, match="max_train_rows"):
        training_job_create(dataset=chat, method="lora", params={"max_train_rows": 100}, user=user)
    too_many = (torch.cuda.device_count() if torch.cuda.is_available() else os.cpu_count() or 1) + 1
    with pytest.raises(ValidationError, match="data-parallel processes need"):
        training_job_create(dataset=DatasetFactory(), method="lora", params={"processes": too_many}, user=user)
    with pytest.raises(ValidationError, match="wise_alpha averages a full fine-tune"):
        training_job_create(dataset=DatasetFactory(), method="lora", params={"wise_alpha": 0.5}, user=user)
    with pytest.raises(ValueError, match="warmup_ratio must be between"):
        clean_params({"warmup_ratio": 0.9}, "classifier")


def test_base_model_must_be_a_registered_backbone_before_anything_is_stored(tmp_path):
    from django.core.management import CommandError, call_command

    from apps.mlops.models import Dataset, ModelVersion
    from ml.artifacts import wrap_model_dir
    from ml.defaults import embedder_weights

    user = UserFactory(roles=["admin"])
    # a folder that is not an encoder is refused by the CLI before the dataset is stored
    data = tmp_path / "d.csv"
    data.write_text("text,label\nwhere is my parcel,shipping\nrefund please,refund\n")
    with pytest.raises(CommandError, match="not a registered backbone"):
        call_command("train", "--dataset-file", str(data), "--role", "intent", "--base", str(tmp_path), "--async")
    assert not Dataset.objects.exists()
    # and a registered embedder version (as make models-large registers one) is accepted and resolved
    wrap_model_dir(embedder_weights(), tmp_path / "emb", role="embedder", version="embedder-big")
    ModelVersion.objects.create(role="embedder", version="embedder-big", kind="sentence-transformer",
                                artifact_path=str(tmp_path / "emb"))
    job = training_job_create(dataset=DatasetFactory(), method="lora", params={"base_model": "embedder-big"},
                              user=user)
    assert job.params["base_model"] == str(embedder_weights().resolve())
