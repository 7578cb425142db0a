"""Calibration and abstention of versions: command, evaluate, API, page, reload and audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from apps.audit.models import AuditEvent
from apps.mlops.models import ModelVersion
from apps.mlops.sample_data import intent_sample_rows, rows_to_csv
from apps.mlops.services.abstention import model_version_calibrate
from apps.mlops.services.datasets import dataset_create
from apps.mlops.services.serving import model_get, serving_reset
from apps.mlops.services.versions import model_version_evaluate
from ml.artifacts import Manifest, read_manifest
from ml.classify import FewShotClassifier
from ml.registry import default_registry
from tests.mlops.factories import ModelVersionFactory, isolate

pytestmark = pytest.mark.django_db

API = "/api/mlops/versions"
OUT_OF_SCOPE = ["What is the weather in Paris tomorrow?", "Tell me a joke about cats",
                "Who won the football game last night?", "How do I bake sourdough bread?",
                "Play some jazz music", "What is the capital of Australia?", "Recommend a good novel",
                "How tall is Mount Everest?"]


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path, monkeypatch):
    isolate(settings, tmp_path, monkeypatch)
    registry = default_registry()
    registry.ensure_active("intent", None)
    serving_reset()
    yield
    registry.ensure_active("intent", None)
    registry.unload("intent")
    serving_reset()


@pytest.fixture
def held_out() -> list[tuple[str, str]]:
    return intent_sample_rows(40, seed=11) + [(t, "oos") for t in OUT_OF_SCOPE]


@pytest.fixture
def version(settings) -> ModelVersion:
    """A real few-shot intent version (frozen MiniLM + head on 60 sample rows), active."""
    rows = intent_sample_rows(60, seed=3)
    clf = FewShotClassifier.fit(default_registry().get("embedder"), [t for t, _ in rows], [y for _, y in rows])
    path = Path(settings.ARTIFACTS_DIR) / "intent" / "intent-fewshot-test"
    clf.save(path, Manifest(role="intent", kind="fewshot-classifier", version="intent-fewshot-test"))
    return ModelVersionFactory(role="intent", version="intent-fewshot-test", kind="fewshot-classifier",
                               artifact_path=str(path), labels=clf.labels, status=ModelVersion.Status.ACTIVE)


def _threshold(version: ModelVersion) -> float | None:
    return (read_manifest(Path(version.artifact_path)).extra.get("abstention") or {}).get("threshold")


def test_calibrate_command_stores_calibration_and_a_threshold(version, held_out, tmp_path):
    data = tmp_path / "dev.csv"
    data.write_bytes(rows_to_csv(held_out))
    call_command("calibrate", version.version, "--data", str(data))
    extra = read_manifest(Path(version.artifact_path)).extra
    assert extra["calibration"]["temperature"] > 0
    assert extra["calibration"]["ece_after"] <= extra["calibration"]["ece_before"]
    assert extra["abstention"]["method"] == "max_prob"  # no training texts: kNN cannot be fitted
    assert extra["abstention"]["rows"] == {"in_scope": 40, "oos": len(OUT_OF_SCOPE)}
    assert 0.0 <= extra["abstention"]["threshold"] <= 1.0


def test_evaluate_reports_in_scope_accuracy_oos_precision_recall_and_the_curve(version, held_out, make_user):
    model_version_calibrate(version=version, rows=held_out)
    upload = SimpleUploadedFile("eval.csv", rows_to_csv(intent_sample_rows(24, seed=5) + [(t, "oos") for t in
                                                                                          OUT_OF_SCOPE[:4]]))
    dataset = dataset_create(uploaded_file=upload, name="eval", role="intent", user=make_user("agent"))
    report = model_version_evaluate(version=version, dataset=dataset)
    ood = report["candidate"]["abstention"]
    assert ood["rows"] == 28 and ood["oos_rows"] == 4
    assert set(ood) >= {"in_scope_accuracy", "oos_precision", "oos_recall", "auroc", "curve"}
    assert len(ood["curve"]) == 51
    assert "oos" not in report["candidate"]["labels"]  # the classes are judged on in-scope rows
    assert report["candidate"]["support"] == 24


def test_admin_sets_the_threshold_by_api_the_served_model_reloads_and_it_is_audited(version, held_out, api_client,
                                                                                     make_user):
    model_version_calibrate(version=version, rows=held_out)
    assert any(p.abstained for p in model_get("intent").predict(OUT_OF_SCOPE))
    api_client.force_authenticate(make_user("admin"))
    response = api_client.patch(f"{API}/{version.pk}/abstention/", {"threshold": 0.0}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["abstention"]["threshold"] == 0.0
    assert _threshold(version) == 0.0
    # the process's served model follows without a restart: at 0 nothing abstains
    served = model_get("intent")
    assert served.abstention.threshold == 0.0
    assert not any(p.abstained for p in served.predict(OUT_OF_SCOPE))
    event = AuditEvent.objects.get(action="model.abstention")
    assert event.details["threshold"] == 0.0 and event.details["version"] == version.version


def test_a_threshold_another_process_wrote_reaches_this_process_at_its_next_sync(version, held_out):
    from apps.mlops.services.serving import registry_sync
    from ml.abstention import set_threshold

    model_version_calibrate(version=version, rows=held_out)
    served = model_get("intent")
    assert served.abstention.threshold != 0.0
    set_threshold(version.artifact_path, 0.0)  # what another server's edit leaves on disk

    registry_sync("intent", force=True)  # the periodic sync (every SYNC_INTERVAL_S)

    assert model_get("intent").abstention.threshold == 0.0
    assert not any(p.abstained for p in model_get("intent").predict(OUT_OF_SCOPE))


@pytest.mark.parametrize("bad", [-0.1, 1.01, "high", None])
def test_a_threshold_outside_0_1_is_a_400_and_nothing_changes(version, held_out, api_client, make_user, bad):
    model_version_calibrate(version=version, rows=held_out)
    before = _threshold(version)
    api_client.force_authenticate(make_user("admin"))
    response = api_client.patch(f"{API}/{version.pk}/abstention/", {"threshold": bad}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"]
    assert _threshold(version) == before
    assert not AuditEvent.objects.filter(action="model.abstention").exists()


def test_only_admins_change_the_threshold_and_viewers_read_it(version, held_out, api_client, make_user):
    model_version_calibrate(version=version, rows=held_out)
    api_client.force_authenticate(make_user("agent"))
    assert api_client.patch(f"{API}/{version.pk}/abstention/", {"threshold": 0.5}, format="json").status_code == 403
    body = api_client.get(f"{API}/{version.pk}/abstention/").json()
    assert body["abstention"]["method"] == "max_prob" and body["calibration"]["temperature"] > 0


def test_version_page_shows_the_curve_and_lets_an_admin_edit_the_threshold(version, held_out, client, make_user):
    model_version_calibrate(version=version, rows=held_out)
    client.force_login(make_user("agent"))
    page = client.get(f"/models/versions/{version.pk}/").content.decode()
    assert 'id="chart-abstention"' in page and 'id="abstention-curve"' in page
    assert "mlops/abstention.js" in page
    assert "Save threshold" not in page
    client.force_login(make_user("admin"))
    page = client.get(f"/models/versions/{version.pk}/").content.decode()
    assert "Save threshold" in page
    script = page.split('id="abstention-curve"', 1)[1]
    curve = json.loads(script.split(">", 1)[1].split("</script>", 1)[0])
    assert len(curve["curve"]) == 51 and curve["threshold"] == _threshold(version)
    response = client.post(f"/models/versions/{version.pk}/abstention/", {"threshold": "0.25"})
    assert response.status_code == 302
    assert _threshold(version) == 0.25
    client.post(f"/models/versions/{version.pk}/abstention/", {"threshold": "7"})
    assert _threshold(version) == 0.25


def test_an_upload_of_only_out_of_scope_rows_is_refused_with_a_clear_error(api_client, make_user):
    api_client.force_authenticate(make_user("agent"))
    upload = SimpleUploadedFile("oos.csv", rows_to_csv([(t, "oos") for t in OUT_OF_SCOPE]), content_type="text/csv")
    response = api_client.post("/api/mlops/datasets/", {"name": "only-oos", "role": "intent", "file": upload},
                               format="multipart")
    assert response.status_code == 400
    assert "out-of-scope label" in json.dumps(response.json())


def test_the_bundled_zero_shot_default_gets_a_threshold_from_the_command(held_out, tmp_path, monkeypatch):
    from ml.artifacts import write_manifest

    # given a zero-shot intent default (a copy: the real one is left alone)
    default = tmp_path / "intent-default"
    descriptions = {"account": "my account, login, password, address", "order_status": "where is my order, delivery",
                    "payment": "card declined, billing, payment failed", "refund": "refund, return, money back"}
    write_manifest(default, Manifest(role="intent", kind="zeroshot-classifier", version="default",
                                     labels=sorted(descriptions), extra={"label_descriptions": descriptions}))
    monkeypatch.setattr("ml.defaults.bundled_defaults", lambda: {"intent": lambda: default})
    data = tmp_path / "dev.csv"
    data.write_bytes(rows_to_csv(held_out))
    # when it is calibrated
    call_command("calibrate", "default", "--role", "intent", "--data", str(data))
    # then its manifest holds the rule and a fresh load abstains on some out-of-scope texts
    extra = read_manifest(default).extra
    assert extra["abstention"]["rows"]["oos"] == len(OUT_OF_SCOPE)
    assert extra["abstention"]["auroc"]["max_prob"] > 0.5
    from ml.registry import Registry

    fresh = Registry(defaults={"embedder": default_registry()._defaults["embedder"]}).load_artifact(default)
    assert fresh.abstention.threshold == extra["abstention"]["threshold"]
    assert fresh.calibration_temperature == extra["calibration"]["temperature"]


def test_the_page_says_which_out_of_scope_rule_a_version_was_fitted_with():
    from apps.mlops.presenters import abstention_view

    current = {"method": "knn_max_prob_oos", "threshold": 0.6, "oos_margin": 0.1, "labels_file": "ood_train_labels.npy"}
    legacy = {"method": "knn_max_prob_oos", "threshold": 0.6, "oos_penalty": 0.45}
    for rule, per_class in ((current, True), (legacy, False)):
        view = abstention_view({"calibration": None, "abstention": rule}, None)
        assert (view["per_class_knn"], view["relative_oos"]) == (per_class, per_class)
