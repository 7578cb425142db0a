"""A failed job keeps its traceback for admins; everyone else sees one line without paths."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.mlops.models import TrainingJob
from apps.mlops.sample_data import intent_sample_rows, rows_to_csv
from apps.mlops.services.datasets import dataset_create
from apps.mlops.services.training import ERROR_MAX_CHARS, public_error, training_job_create, training_job_run
from tests.mlops.factories import DatasetFactory, TrainingJobFactory, UserFactory, isolate

pytestmark = pytest.mark.django_db

SECRET = "/srv/trellis/var/media/datasets/2026/11/secret.csv"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/trellis/apps/mlops/services/training.py", line 290, in training_job_run\n'
    f"FileNotFoundError: [Errno 2] No such file or directory: '{SECRET}'"
)


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path, monkeypatch):
    isolate(settings, tmp_path, monkeypatch)


@pytest.fixture
def failed_job():
    return TrainingJobFactory(
        dataset=DatasetFactory(role="sentiment", label_counts={"negative": 2, "positive": 2}),
        status=TrainingJob.Status.FAILED,
        error="FileNotFoundError: [Errno 2] No such file or directory: '<path>'",
        traceback=TRACEBACK,
        log_tail="12:00:00 started on cpu\n12:00:01 FileNotFoundError: [Errno 2] No such file or directory: '<path>'",
    )


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (f"OSError: cannot read '{SECRET}'", "OSError: cannot read '<path>'"),
        ("ValueError: 2 problem(s):\nline 1: bad\nline 2: worse", "ValueError: 2 problem(s):"),
        ("dataset invalid: no such file: /tmp/x/data.csv", "dataset invalid: no such file: <path>"),
        ("epoch 1 step 5/20 at http://example.com/a/b", "epoch 1 step 5/20 at http://example.com/a/b"),
        ("", ""),
    ],
    ids=["quoted-path", "multi-line", "bare-path", "no-path", "empty"],
)
def test_public_error_is_one_line_without_paths(message, expected):
    assert public_error(message) == expected


def test_public_error_is_bounded():
    assert len(public_error("E: " + "x" * 5000)) == ERROR_MAX_CHARS


def test_a_failing_job_stores_the_traceback_and_shows_one_line(make_user, monkeypatch,
                                                                django_capture_on_commit_callbacks):
    # given a job whose training code fails reading a file under a server path
    agent = make_user("agent")
    dataset = dataset_create(uploaded_file=SimpleUploadedFile("d.csv", rows_to_csv(intent_sample_rows(40))),
                             name="d", role="intent", user=agent)
    with django_capture_on_commit_callbacks(execute=False):
        job = training_job_create(dataset=dataset, method="fewshot", params={}, user=agent)

    def failing_train(job, reporter):
        with open(SECRET, encoding="utf-8"):
            pass

    monkeypatch.setattr("apps.mlops.services.training._train", failing_train)
    # when it runs
    job = training_job_run(job.pk)
    # then it failed with a one-line error without the path; the traceback is kept whole
    assert job.status == TrainingJob.Status.FAILED
    assert job.error == "FileNotFoundError: [Errno 2] No such file or directory: '<path>'"
    assert "Traceback (most recent call last)" in job.traceback
    assert SECRET in job.traceback
    # and the log every role holder sees has neither the path nor the traceback
    stored = TrainingJob.objects.get(pk=job.pk)
    assert SECRET not in stored.log_tail
    assert "Traceback" not in stored.log_tail
    assert stored.error == job.error


def test_an_invalid_dataset_fails_the_job_with_one_line_and_the_full_report_for_admins(
        make_user, django_capture_on_commit_callbacks):
    agent = make_user("agent")
    dataset = dataset_create(uploaded_file=SimpleUploadedFile("d.csv", rows_to_csv(intent_sample_rows(40))),
                             name="d", role="intent", user=agent)
    with django_capture_on_commit_callbacks(execute=False):
        job = training_job_create(dataset=dataset, method="lora", params={}, user=agent)
    path = dataset.file.path
    dataset.file.storage.delete(dataset.file.name)  # the file is gone from the server
    job = training_job_run(job.pk)
    assert job.status == TrainingJob.Status.FAILED
    assert job.error == "dataset invalid: no such file: <path>"
    assert path in job.traceback


def test_api_shows_the_traceback_to_admins_only(api_client, failed_job):
    url = f"/api/mlops/jobs/{failed_job.pk}/"
    api_client.force_authenticate(UserFactory(roles=["analyst"]))
    analyst_view = api_client.get(url).json()
    assert analyst_view["error"] == failed_job.error
    assert analyst_view["traceback"] is None
    assert SECRET not in str(analyst_view)
    listed = api_client.get("/api/mlops/jobs/").json()["results"][0]
    assert listed["traceback"] is None
    api_client.force_authenticate(UserFactory(roles=["admin"]))
    assert api_client.get(url).json()["traceback"] == TRACEBACK
    assert api_client.get("/api/mlops/jobs/").json()["results"][0]["traceback"] == TRACEBACK


def test_job_page_shows_the_traceback_to_admins_only(client, failed_job):
    url = reverse("mlops:job", args=[failed_job.pk])
    client.force_login(UserFactory(roles=["analyst"]))
    analyst_page = client.get(url).content.decode()
    assert "No such file or directory: &#x27;&lt;path&gt;&#x27;" in analyst_page
    assert SECRET not in analyst_page
    assert "Traceback" not in analyst_page
    client.force_login(UserFactory(roles=["admin"]))
    admin_page = client.get(url).content.decode()
    assert 'id="job-traceback"' in admin_page
    assert SECRET in admin_page
