"""At most TRELLIS_MAX_ACTIVE_JOBS_PER_USER queued or running jobs per user."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.mlops.models import TrainingJob
from apps.mlops.services.training import TooManyActiveJobs, training_job_create
from tests.mlops.factories import DatasetFactory, TrainingJobFactory, UserFactory, isolate

pytestmark = pytest.mark.django_db

API = "/api/mlops/jobs/"
LABELS = {"negative": 2, "positive": 2}


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path, monkeypatch):
    isolate(settings, tmp_path, monkeypatch)
    settings.TRELLIS_MAX_ACTIVE_JOBS_PER_USER = 3


@pytest.fixture
def dataset():
    return DatasetFactory(role="sentiment", label_counts=LABELS)


def test_the_default_limit_is_three(settings):
    from config import settings as config_settings

    assert config_settings.TRELLIS_MAX_ACTIVE_JOBS_PER_USER == 3


def test_queued_running_and_cancelling_jobs_count_finished_ones_do_not(dataset):
    # given an analyst with one job in each active state and finished ones besides
    analyst = UserFactory(roles=["analyst"])
    for status in ("queued", "running", "cancelling", "succeeded", "failed", "cancelled"):
        TrainingJobFactory(dataset=dataset, created_by=analyst, status=status)
    # when they start another, then it is refused naming the limit
    with pytest.raises(TooManyActiveJobs) as refused:
        training_job_create(dataset=dataset, method="lora", params={}, user=analyst)
    assert refused.value.limit == 3
    assert "the limit is 3" in refused.value.message
    # and once one ends, a new one is accepted
    TrainingJob.objects.filter(created_by=analyst, status="queued").update(status="cancelled")
    assert training_job_create(dataset=dataset, method="lora", params={}, user=analyst).status == "queued"


def test_the_limit_is_per_user_and_jobs_without_a_user_are_not_capped(dataset):
    first, second = UserFactory(roles=["analyst"]), UserFactory(roles=["analyst"])
    TrainingJobFactory.create_batch(3, dataset=dataset, created_by=first, status="queued")
    assert training_job_create(dataset=dataset, method="lora", params={}, user=second).created_by == second
    TrainingJobFactory.create_batch(3, dataset=dataset, created_by=None, status="queued")
    assert training_job_create(dataset=dataset, method="lora", params={}, user=None).created_by is None


def test_api_answers_429_in_the_error_shape_and_retries_still_return_the_job(api_client, dataset):
    # given an analyst whose three jobs were started through the API with idempotency keys
    analyst = UserFactory(roles=["analyst"])
    api_client.force_authenticate(analyst)
    ids = [
        api_client.post(API, {"dataset": dataset.pk}, HTTP_IDEMPOTENCY_KEY=f"run-{n}").json()["id"] for n in range(3)
    ]
    # when a fourth is asked for
    response = api_client.post(API, {"dataset": dataset.pk}, HTTP_IDEMPOTENCY_KEY="run-3")
    # then it is a 429 whose message names the limit, and no job was made
    assert response.status_code == 429, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == "too_many_active_jobs"
    assert "the limit is 3" in error["message"]
    assert "TRELLIS_MAX_ACTIVE_JOBS_PER_USER" in error["message"]
    assert error["details"] == {"limit": 3}
    assert TrainingJob.objects.filter(created_by=analyst).count() == 3
    # and a retry of an accepted request (same key) still answers with its job
    retry = api_client.post(API, {"dataset": dataset.pk}, HTTP_IDEMPOTENCY_KEY="run-1")
    assert retry.status_code == 201
    assert retry.json()["id"] == ids[1]


def test_the_dataset_page_shows_the_refusal(client, dataset, settings):
    settings.TRELLIS_MAX_ACTIVE_JOBS_PER_USER = 1
    analyst = UserFactory(roles=["analyst"])
    TrainingJobFactory(dataset=dataset, created_by=analyst, status="running")
    client.force_login(analyst)
    response = client.post(reverse("mlops:dataset", args=[dataset.pk]), {"method": "lora", "epochs": 1})
    assert response.status_code == 429
    body = response.content.decode()
    assert "the limit is 1 per user" in body
    assert 'class="error"' in body
    assert TrainingJob.objects.filter(created_by=analyst).count() == 1
