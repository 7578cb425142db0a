"""The model pages: sign-in, roles, 404 for other roles' objects, forms and what they show."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.mlops.models import Dataset, ModelVersion, TrainingJob
from apps.mlops.services.versions import PromotionRefused
from tests.mlops.factories import (
    GOOD_CSV,
    DatasetFactory,
    ModelVersionFactory,
    TrainingJobFactory,
    UserFactory,
    isolate,
    report,
)

pytestmark = pytest.mark.django_db

LABELS = ["negative", "positive"]


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path, monkeypatch):
    isolate(settings, tmp_path, monkeypatch)


@pytest.fixture
def objs():
    dataset = DatasetFactory(role="sentiment", name="headlines", label_counts={label: 2 for label in LABELS})
    job = TrainingJobFactory(
        dataset=dataset,
        status=TrainingJob.Status.RUNNING,
        progress=0.5,
        epoch=1,
        step=10,
        total_steps=20,
        log_tail="epoch 1 done: train loss 0.6931",
        metrics_history=[{"epoch": 1, "train_loss": 0.6931, "step": 10, "dev": report(LABELS, macro_f1=0.61)}],
    )
    version = ModelVersionFactory(
        role="sentiment",
        version="sentiment-test-0001",
        labels=LABELS,
        metrics={**report(LABELS, macro_f1=0.75), "dev": report(LABELS, macro_f1=0.7), "evaluated_on": "test"},
        training_job=job,
    )
    return SimpleNamespace(dataset=dataset, job=job, version=version)


def signed_in(client, *roles: str):
    user = UserFactory(roles=list(roles))
    client.force_login(user)
    return user


def page_urls(objs) -> list[str]:
    return [
        reverse("mlops:models"),
        reverse("mlops:role", args=["sentiment"]),
        reverse("mlops:version", args=[objs.version.pk]),
        reverse("mlops:datasets"),
        reverse("mlops:dataset_upload"),
        reverse("mlops:dataset", args=[objs.dataset.pk]),
        reverse("mlops:jobs"),
        reverse("mlops:job", args=[objs.job.pk]),
    ]


PAGE_NAMES = ["models", "role", "version", "datasets", "upload", "dataset", "jobs", "job"]


@pytest.mark.parametrize("index", range(len(PAGE_NAMES)), ids=PAGE_NAMES)
def test_anonymous_is_sent_to_the_login_page(client, objs, index):
    # given nobody signed in, when a model page is opened
    url = page_urls(objs)[index]
    response = client.get(url)
    # then the browser is redirected to sign in, and back afterwards
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    assert "next=" in response["Location"]


@pytest.mark.parametrize("index", range(len(PAGE_NAMES)), ids=PAGE_NAMES)
def test_user_without_a_role_gets_403(client, objs, index):
    signed_in(client)
    assert client.get(page_urls(objs)[index]).status_code == 403


@pytest.mark.parametrize("index", range(len(PAGE_NAMES)), ids=PAGE_NAMES)
def test_pages_render_for_the_owning_role(client, objs, index):
    # given an analyst, who owns the sentiment model
    signed_in(client, "analyst")
    # when they open each page
    response = client.get(page_urls(objs)[index])
    # then it renders inside the dashboard shell
    assert response.status_code == 200
    assert b'name="viewport"' in response.content


@pytest.mark.parametrize("name", ["mlops:version", "mlops:dataset", "mlops:job"], ids=["version", "dataset", "job"])
def test_objects_of_another_role_are_404(client, objs, name):
    # given an agent (intent and chat models), when they open a sentiment object
    signed_in(client, "agent")
    pk = {"mlops:version": objs.version.pk, "mlops:dataset": objs.dataset.pk, "mlops:job": objs.job.pk}[name]
    # then it does not exist for them
    assert client.get(reverse(name, args=[pk])).status_code == 404


def test_role_page_of_a_role_the_user_may_not_see_is_404(client):
    signed_in(client, "merchandiser")
    assert client.get(reverse("mlops:role", args=["sentiment"])).status_code == 404
    assert client.get(reverse("mlops:role", args=["weather"])).status_code == 404


def test_overview_shows_the_active_version_and_its_metrics(client, objs):
    objs.version.status = ModelVersion.Status.ACTIVE
    objs.version.save()
    signed_in(client, "analyst")
    content = client.get(reverse("mlops:models")).content.decode()
    assert "sentiment-test-0001" in content
    assert "0.750" in content
    assert "bundled default" in content  # the embedder and NER still serve their defaults
    assert "Intent classifier" not in content  # not an analyst's model


def test_promote_buttons_are_for_admins_only(client, objs):
    signed_in(client, "analyst")
    assert (
        reverse("mlops:version_promote", args=[objs.version.pk])
        not in client.get(reverse("mlops:role", args=["sentiment"])).content.decode()
    )
    client.logout()
    signed_in(client, "admin")
    content = client.get(reverse("mlops:role", args=["sentiment"])).content.decode()
    assert reverse("mlops:version_promote", args=[objs.version.pk]) in content
    assert 'name="force"' in content


def test_non_admin_may_not_promote_or_roll_back(client, objs):
    signed_in(client, "analyst")
    assert client.post(reverse("mlops:version_promote", args=[objs.version.pk])).status_code == 403
    assert client.post(reverse("mlops:role_rollback", args=["sentiment"])).status_code == 403


def test_refused_promotion_shows_the_reason_and_a_force_checkbox(client, objs, monkeypatch):
    # given a gate that refuses the candidate
    def refuse(*, version, user, force=False, **audit):
        raise PromotionRefused(
            "candidate sentiment-test-0001 is worse than the active version on held-out "
            "macro_f1 on 40 rows: 0.5000 vs 0.8000; promote with force to override",
            0.5,
            0.8,
        )

    monkeypatch.setattr("apps.mlops.views.model_version_promote", refuse)
    signed_in(client, "admin")
    # when an admin presses promote
    response = client.post(reverse("mlops:version_promote", args=[objs.version.pk]))
    # then the versions page explains why and offers to force it
    content = response.content.decode()
    assert response.status_code == 409
    assert "Promotion refused" in content
    assert "0.5000 vs 0.8000" in content
    assert 'name="force"' in content
    objs.version.refresh_from_db()
    assert objs.version.status == ModelVersion.Status.CANDIDATE


def test_forced_promotion_redirects_to_the_role_page(client, objs, monkeypatch):
    seen = []

    def promote(*, version, user, force=False, **audit):
        seen.append(force)
        return version

    monkeypatch.setattr("apps.mlops.views.model_version_promote", promote)
    signed_in(client, "admin")
    response = client.post(reverse("mlops:version_promote", args=[objs.version.pk]), {"force": "on"})
    assert response.status_code == 302
    assert response["Location"] == reverse("mlops:role", args=["sentiment"])
    assert seen == [True]


def test_rollback_with_nothing_active_says_so(client):
    signed_in(client, "admin")
    response = client.post(reverse("mlops:role_rollback", args=["intent"]), follow=True)
    assert "nothing to roll back" in response.content.decode()


def test_upload_page_shows_the_validation_errors_of_a_bad_csv(client):
    # given an analyst and a CSV with one class only
    signed_in(client, "analyst")
    bad = SimpleUploadedFile("one-class.csv", b"text,label\ngood,positive\ngreat,positive\nfine,positive\n")
    # when they upload it
    response = client.post(reverse("mlops:dataset_upload"), {"file": bad, "name": "bad", "role": "sentiment"})
    # then the form comes back with the report and nothing is stored
    content = response.content.decode()
    assert response.status_code == 400
    assert "Validation report" in content
    assert "only one class" in content
    assert "positive" in content  # the label counts
    assert 'name="file"' in content
    assert Dataset.objects.count() == 0


def test_upload_of_a_good_csv_goes_to_the_dataset_page(client):
    signed_in(client, "analyst")
    good = SimpleUploadedFile("headlines.csv", GOOD_CSV)
    response = client.post(reverse("mlops:dataset_upload"), {"file": good, "name": "", "role": "sentiment"})
    dataset = Dataset.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("mlops:dataset", args=[dataset.pk])
    assert (dataset.name, dataset.rows) == ("headlines.csv", 4)


def test_upload_only_offers_roles_the_user_may_train(client):
    signed_in(client, "analyst")
    content = client.get(reverse("mlops:dataset_upload")).content.decode()
    assert 'value="sentiment"' in content
    assert 'value="intent"' not in content


def test_upload_page_is_403_for_a_role_that_trains_nothing(client):
    signed_in(client, "merchandiser")
    assert client.get(reverse("mlops:dataset_upload")).status_code == 403


def test_dataset_page_starts_a_job(client, objs):
    # given the analyst on their dataset's page
    signed_in(client, "analyst")
    page = client.get(reverse("mlops:dataset", args=[objs.dataset.pk])).content.decode()
    assert "Start a training job" in page
    # when they submit the start-job form
    response = client.post(
        reverse("mlops:dataset", args=[objs.dataset.pk]),
        {"method": "lora", "epochs": "2", "learning_rate": "0.0005", "idempotency_key": "form-abc"},
    )
    # then a job is queued and the live page opens
    job = TrainingJob.objects.get(idempotency_key="form-abc")
    assert response.status_code == 302
    assert response["Location"] == reverse("mlops:job", args=[job.pk])
    assert job.params == {"epochs": 2, "learning_rate": 0.0005}
    # and a double submit of the same form does not start a second job
    client.post(
        reverse("mlops:dataset", args=[objs.dataset.pk]),
        {"method": "lora", "epochs": "2", "idempotency_key": "form-abc"},
    )
    assert TrainingJob.objects.filter(dataset=objs.dataset).count() == 2  # the fixture's job and this one


def test_dataset_page_shows_bad_job_parameters(client, objs):
    signed_in(client, "analyst")
    response = client.post(reverse("mlops:dataset", args=[objs.dataset.pk]), {"method": "lora", "epochs": "0"})
    assert response.status_code == 400
    assert "greater than or equal to 1" in response.content.decode()


def test_job_page_has_the_live_parts(client, objs):
    # given a running job with one epoch done
    signed_in(client, "analyst")
    # when its page is opened
    content = client.get(reverse("mlops:job", args=[objs.job.pk])).content.decode()
    # then it has the progress bar, charts, confusion matrix, log, cancel button and the socket path
    assert 'id="job-progress"' in content
    assert 'id="chart-loss"' in content and 'id="chart-f1"' in content
    assert 'class="cm"' in content
    assert "epoch 1 done: train loss 0.6931" in content
    assert reverse("mlops:job_cancel", args=[objs.job.pk]) in content
    assert f'data-ws-path="/ws/mlops/jobs/{objs.job.pk}/"' in content
    assert "vendor/chart.js/dist/chart.umd.js" in content
    assert "mlops/job.js" in content
    snapshot = content.split('id="job-snapshot" type="application/json">')[1].split("</script>")[0]
    assert json.loads(snapshot)["status"] == "running"


def test_cancel_from_the_job_page(client, objs):
    signed_in(client, "analyst")
    response = client.post(reverse("mlops:job_cancel", args=[objs.job.pk]))
    assert response.status_code == 302
    objs.job.refresh_from_db()
    assert objs.job.status == TrainingJob.Status.CANCELLING  # running: it stops at its next check


def test_version_page_shows_metrics_per_class_and_the_confusion_matrix(client, objs):
    signed_in(client, "analyst")
    content = client.get(reverse("mlops:version", args=[objs.version.pk])).content.decode()
    assert "sentiment-test-0001" in content
    assert "0.750" in content
    assert "Per class" in content and "Confusion matrix" in content
    assert "Best epoch on the dev split" in content
    assert reverse("mlops:version_promote", args=[objs.version.pk]) not in content  # analysts do not promote


def test_evaluate_from_the_version_page_queues_the_task(client, objs, monkeypatch):
    queued = []
    monkeypatch.setattr(
        "apps.mlops.tasks.model_version_evaluate_task.delay",
        lambda *args: queued.append(args) or SimpleNamespace(id="t"),
    )
    signed_in(client, "analyst")
    response = client.post(reverse("mlops:version_evaluate", args=[objs.version.pk]), {"dataset": objs.dataset.pk})
    assert response.status_code == 302
    assert queued == [(objs.version.pk, objs.dataset.pk)]
