"""``manage.py chat_demo`` on a small generated Bitext-shaped data set: the demo route, the few-shot
intent job through the ML core, promotion, the test-split figure, and a second start that
changes nothing. The embedder is the bundled MiniLM (model_get("embedder")), as in the demo."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.chat.models import WidgetRoute
from apps.chat.services.intent_demo import TEST_FILE, TRAIN_FILE, few_shot_sample
from apps.mlops.models import ModelVersion, TrainingJob
from apps.mlops.services.serving import model_get, serving_reset

pytestmark = pytest.mark.django_db(transaction=True)

# Three intents, phrasings a shop's customers use: distinct enough for a linear head on MiniLM.
PHRASES = {
    "cancel_order": [
        "cancel my order {n}",
        "I want to cancel purchase {n}",
        "please cancel order number {n}",
        "how do I cancel the order {n}",
        "stop order {n} I don't want it",
    ],
    "track_refund": [
        "where is my refund for {n}",
        "track the refund of order {n}",
        "has my refund {n} been sent",
        "status of refund {n}",
        "when will I get my money back for {n}",
    ],
    "recover_password": [
        "I forgot my password {n}",
        "reset my account password {n}",
        "can't log in, lost password {n}",
        "help me recover my password {n}",
        "password recovery for account {n}",
    ],
}
COLUMNS = ["utterance", "intent", "entity_type", "entity_value", "start_offset", "end_offset", "category", "tags"]


def _write(path: Path, numbers: range) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for intent, phrases in PHRASES.items():
            for n in numbers:
                for phrase in phrases:
                    writer.writerow([phrase.format(n=n), intent, "", "", "", "", "X", "B"])


@pytest.fixture
def bitext(tmp_path) -> Path:
    folder = tmp_path / "bitext"
    folder.mkdir()
    _write(folder / TRAIN_FILE, range(100, 104))  # 20 rows per intent
    _write(folder / TEST_FILE, range(900, 901))  # 5 per intent, numbers never trained on
    return folder


@pytest.fixture(autouse=True)
def isolated(settings, tmp_path, monkeypatch):
    from ml.registry import default_registry

    monkeypatch.setattr("apps.mlops.services.training.training_job_enqueue", lambda job_id: None)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    registry = default_registry()
    registry.ensure_active("intent", None)
    serving_reset()
    yield
    registry.ensure_active("intent", None)
    registry.unload("intent")
    serving_reset()


def test_few_shot_sample_takes_at_most_n_per_intent_reproducibly():
    rows = [(f"t{i}", "a" if i % 3 else "b") for i in range(30)]
    sample = few_shot_sample(rows, 5)
    assert sum(label == "a" for _, label in sample) == 5 and sum(label == "b" for _, label in sample) == 5
    assert sample == few_shot_sample(rows, 5) and sample == sorted(sample, key=rows.index)


@pytest.fixture
def no_oos(tmp_path) -> str:
    return str(tmp_path / "no-banking77")


# Banking questions a shop does not answer: two intents give examples, a third is never shown.
BANKING = {
    "exchange_rate": ["what is the exchange rate for euros {n}", "how much is a dollar in pounds today {n}",
                      "currency exchange rate to yen {n}"],
    "atm_support": ["where is the nearest cash machine {n}", "which ATMs can I withdraw cash from {n}",
                    "can I use any ATM abroad {n}"],
    "pending_top_up": ["my top-up of my balance is still pending {n}", "why hasn't my wallet top up gone through {n}",
                       "top up pending for hours {n}"],
}


@pytest.fixture
def banking(tmp_path) -> Path:
    folder = tmp_path / "banking77"
    folder.mkdir()
    for name, numbers, intents in (("train.csv", range(10, 14), ("exchange_rate", "atm_support")),
                                   ("test.csv", range(90, 92), tuple(BANKING))):
        with (folder / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "category"])
            for intent in intents:
                for n in numbers:
                    for phrase in BANKING[intent]:
                        writer.writerow([phrase.format(n=n), intent])
    return folder


def test_banking_questions_are_out_of_scope_examples_and_the_served_model_says_not_mine(bitext, banking, capsys):
    # given the demo data and BANKING77-shaped banking questions beside it
    call_command("chat_demo", path=str(bitext), oos_path=str(banking), per_intent=12)
    out = capsys.readouterr().out

    # then 8 questions of each banking intent joined the data as out-of-scope examples, not as a class
    job = TrainingJob.objects.get()
    assert job.dataset.rows == 36 and job.dataset.validation["n_oos_rows"] == 16
    version = ModelVersion.objects.get(role="intent")
    assert sorted(version.labels) == sorted(PHRASES)
    assert version.metrics["abstention"]["oos_rows"] == 8  # the half kept to test the threshold
    # and the served model abstains on held-out banking questions, also of a kind it never saw,
    # while still answering the shop's questions
    report = version.metrics["bitext_test"]
    assert report["oos_recall_rows"] == 12 and report["oos_recall_unseen_rows"] == 6
    assert report["oos_recall"] >= 0.8 and report["oos_recall_unseen"] >= 0.5
    assert report["in_scope_answered"] >= 0.8
    served = model_get("intent")
    assert served.predict(["what's the exchange rate for swiss francs 77"])[0].abstained
    assert not served.predict(["please cancel order 555, I changed my mind"])[0].abstained
    assert "16 out-of-scope examples" in out and "says 'not mine' to" in out


def test_chat_demo_creates_the_route_trains_promotes_and_is_idempotent(bitext, no_oos, capsys):
    call_command("chat_demo", url="http://127.0.0.1:8123", path=str(bitext), per_intent=12, oos_path=no_oos)
    out = capsys.readouterr().out
    route = WidgetRoute.objects.get(key="demo")
    assert route.allowed_origins == ["http://127.0.0.1:8123", "http://localhost:8123"]
    job = TrainingJob.objects.get()
    assert job.method == "fewshot" and job.status == "succeeded" and job.dataset.rows == 36
    version = ModelVersion.objects.get(role="intent")
    assert version.status == ModelVersion.Status.ACTIVE and sorted(version.labels) == sorted(PHRASES)
    served = model_get("intent")
    assert sorted(served.labels) == sorted(PHRASES)
    assert served.predict(["please cancel order 555, I changed my mind"])[0].label == "cancel_order"
    accuracy = version.metrics["bitext_test"]["accuracy"]
    assert version.metrics["bitext_test"]["rows"] == 15 and accuracy >= 0.8
    assert "trained (3 intents, 36 rows, 0 out-of-scope examples), serving as 'intent'" in out
    assert f"accuracy {accuracy:.3f}" in out

    # a second start: nothing new
    call_command("chat_demo", url="http://127.0.0.1:8123", path=str(bitext), per_intent=12, oos_path=no_oos)
    out = capsys.readouterr().out
    assert "route 'demo' kept (origins added: none new)" in out and "already trained" in out
    assert TrainingJob.objects.count() == 1 and ModelVersion.objects.count() == 1
    assert WidgetRoute.objects.count() == 1


def test_chat_demo_leaves_an_active_intent_model_alone(bitext, no_oos, capsys):
    call_command("chat_demo", path=str(bitext), per_intent=12, oos_path=no_oos)
    first = ModelVersion.objects.get(role="intent")
    capsys.readouterr()
    # different data (fewer rows): a new job and version, but the active one stays
    call_command("chat_demo", path=str(bitext), per_intent=8, oos_path=no_oos)
    out = capsys.readouterr().out
    assert "a candidate (another intent model is active)" in out
    first.refresh_from_db()
    assert first.status == ModelVersion.Status.ACTIVE and ModelVersion.objects.count() == 2


def test_chat_demo_without_the_data_set_still_makes_the_route(tmp_path, capsys):
    call_command("chat_demo", path=str(tmp_path / "missing"))
    assert "intent model skipped: no Bitext data set" in capsys.readouterr().out
    assert WidgetRoute.objects.filter(key="demo").exists() and not TrainingJob.objects.exists()


def test_a_file_that_is_not_bitext_is_reported_not_raised(tmp_path, capsys):
    folder = tmp_path / "odd"
    folder.mkdir()
    for name in (TRAIN_FILE, TEST_FILE):
        (folder / name).write_text("text,label\nhello,greet\n", encoding="utf-8")
    call_command("chat_demo", path=str(folder))
    assert "expected columns utterance and intent" in capsys.readouterr().out
    assert not TrainingJob.objects.exists()
