"""Every list of the model pages and API comes in bounded pages with links to the next."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.mlops.models import TrainingJob
from apps.mlops.view_helpers import PAGE_SIZE
from tests.mlops.factories import DatasetFactory, ModelVersionFactory, TrainingJobFactory, UserFactory, isolate

pytestmark = pytest.mark.django_db

API = "/api/mlops"


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path, monkeypatch):
    isolate(settings, tmp_path, monkeypatch)


def signed_in(client, *roles: str):
    user = UserFactory(roles=list(roles))
    client.force_login(user)
    return user


def job_links(html: str) -> set[str]:
    return set(re.findall(r'href="/models/jobs/(\d+)/"', html))


def test_dataset_list_page_shows_one_page_and_links_the_next(client):
    # given one dataset more than a page holds
    DatasetFactory.create_batch(PAGE_SIZE + 1, role="intent")
    signed_in(client, "agent")
    # when the first page is shown
    first = client.get(reverse("mlops:datasets")).content.decode()
    # then it lists PAGE_SIZE datasets and links page 2, which lists the last one
    assert len(re.findall(r'href="/models/datasets/\d+/"', first)) == PAGE_SIZE
    assert 'href="?page=2"' in first
    second = client.get(reverse("mlops:datasets"), {"page": 2}).content.decode()
    assert len(re.findall(r'href="/models/datasets/\d+/"', second)) == 1
    assert 'href="?page=1"' in second
    assert 'href="?page=3"' not in second


def test_job_list_page_is_paginated_and_keeps_the_filters(client):
    dataset = DatasetFactory(role="intent")
    TrainingJobFactory.create_batch(PAGE_SIZE + 2, dataset=dataset, status=TrainingJob.Status.FAILED)
    TrainingJobFactory.create_batch(3, dataset=dataset, status=TrainingJob.Status.SUCCEEDED)
    signed_in(client, "agent")
    first = client.get(reverse("mlops:jobs"), {"status": "failed", "role": "intent"}).content.decode()
    assert len(job_links(first)) == PAGE_SIZE
    assert 'href="?status=failed&amp;role=intent&amp;page=2"' in first
    second = client.get(reverse("mlops:jobs"), {"status": "failed", "role": "intent", "page": 2}).content.decode()
    assert len(job_links(second)) == 2
    assert job_links(first).isdisjoint(job_links(second))


def test_job_list_page_filters_by_role_and_ignores_an_invisible_one(client):
    intent_job = TrainingJobFactory(dataset=DatasetFactory(role="intent"))
    sentiment_job = TrainingJobFactory(dataset=DatasetFactory(role="sentiment"))
    signed_in(client, "admin")
    assert job_links(client.get(reverse("mlops:jobs"), {"role": "intent"}).content.decode()) == {str(intent_job.pk)}
    assert job_links(client.get(reverse("mlops:jobs"), {"role": "sentiment"}).content.decode()) == {
        str(sentiment_job.pk)
    }
    # an agent asking for the analysts' role still sees only their own roles' jobs
    signed_in(client, "agent")
    assert job_links(client.get(reverse("mlops:jobs"), {"role": "sentiment"}).content.decode()) == {str(intent_job.pk)}


def test_role_page_pages_its_versions_and_links_all_its_jobs(client):
    ModelVersionFactory.create_batch(PAGE_SIZE + 1, role="intent")
    signed_in(client, "agent")
    first = client.get(reverse("mlops:role", args=["intent"])).content.decode()
    assert len(re.findall(r'<tr id="version-\d+">', first)) == PAGE_SIZE
    assert 'href="?page=2"' in first
    assert f'href="{reverse("mlops:jobs")}?role=intent"' in first
    second = client.get(reverse("mlops:role", args=["intent"]), {"page": 2}).content.decode()
    assert len(re.findall(r'<tr id="version-\d+">', second)) == 1


def test_dataset_page_pages_the_jobs_on_it(client):
    dataset = DatasetFactory(role="intent")
    TrainingJobFactory.create_batch(PAGE_SIZE + 1, dataset=dataset, status=TrainingJob.Status.SUCCEEDED)
    signed_in(client, "agent")
    first = client.get(reverse("mlops:dataset", args=[dataset.pk])).content.decode()
    assert len(job_links(first)) == PAGE_SIZE
    assert 'href="?page=2"' in first
    second = client.get(reverse("mlops:dataset", args=[dataset.pk]), {"page": 2}).content.decode()
    assert len(job_links(second)) == 1


def test_a_page_number_out_of_range_shows_the_last_page(client):
    DatasetFactory.create_batch(3, role="intent")
    signed_in(client, "agent")
    response = client.get(reverse("mlops:datasets"), {"page": "999"})
    assert response.status_code == 200
    assert len(re.findall(r'href="/models/datasets/\d+/"', response.content.decode())) == 3


@pytest.mark.parametrize("kind", ["datasets", "jobs", "versions"])
def test_api_lists_are_limit_offset_pages(api_client, kind):
    # given three objects of each kind
    dataset = DatasetFactory(role="intent")
    DatasetFactory.create_batch(2, role="intent")
    TrainingJobFactory.create_batch(3, dataset=dataset)
    ModelVersionFactory.create_batch(3, role="intent")
    api_client.force_authenticate(UserFactory(roles=["agent"]))
    # when two are asked for
    body = api_client.get(f"{API}/{kind}/", {"limit": 2}).json()
    # then two come back with a link to the rest
    assert body["count"] == 3
    assert len(body["results"]) == 2
    assert "offset=2" in body["next"]
    rest = api_client.get(body["next"]).json()
    assert len(rest["results"]) == 1 and rest["next"] is None


def test_api_page_size_is_capped(api_client, monkeypatch):
    from apps.mlops.api import MlopsPagination

    monkeypatch.setattr(MlopsPagination, "max_limit", 2)
    DatasetFactory.create_batch(3, role="intent")
    api_client.force_authenticate(UserFactory(roles=["agent"]))
    body = api_client.get(f"{API}/datasets/", {"limit": 10_000}).json()
    assert len(body["results"]) == 2
    assert body["next"] is not None
