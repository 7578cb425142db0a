"""The version page's "Explain a prediction" form in Chromium: type, submit, see shaded words.

A real few-shot intent version (frozen MiniLM + a head on 40 generated rows) answers through
the API with the session cookie and CSRF header, under the strict Content-Security-Policy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from apps.mlops.sample_data import intent_sample_rows
from ml.artifacts import Manifest
from ml.classify import FewShotClassifier
from ml.registry import default_registry
from tests.mlops.factories import ModelVersionFactory, media_in

pytestmark = pytest.mark.e2e

PASSWORD = "pw-for-tests-123"
TEXT = "where is my laptop, it has not arrived"
SCREENSHOT = "/tmp/e2e-explain.png"  # look at it: the words are shaded
WATCH_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (e) {
  window.reportViolation([e.violatedDirective, e.blockedURI].join(" "));
});
"""


@pytest.fixture
def version(settings, tmp_path):
    media_in(settings, tmp_path)
    rows = intent_sample_rows(40, seed=3)
    classifier = FewShotClassifier.fit(default_registry().get("embedder"), [t for t, _ in rows],
                                       [label for _, label in rows])
    path = Path(settings.ARTIFACTS_DIR) / "intent" / "intent-explain-e2e"
    classifier.save(path, Manifest(role="intent", kind="fewshot-classifier", version="intent-explain-e2e"))
    return ModelVersionFactory(role="intent", version="intent-explain-e2e", kind="fewshot-classifier",
                               artifact_path=str(path), labels=classifier.labels)


def test_an_agent_explains_a_typed_text(page: Page, live_server, make_user, version):
    # given an agent on the version page, with CSP violations reported
    make_user("agent", username="ag", password=PASSWORD)
    violations: list[str] = []
    page.expose_function("reportViolation", lambda line: violations.append(line))
    page.add_init_script(WATCH_VIOLATIONS)
    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Username").fill("ag")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{live_server.url}/models/versions/{version.pk}/")

    # when a text is typed and explained
    page.get_by_label("Text").fill(TEXT)
    page.get_by_role("button", name="Explain", exact=True).click()

    # then the label shows, and the text comes back word by word, shaded by class, unchanged
    expect(page.locator("#explain-label")).to_have_text("order_status")
    words = page.locator("#explain-tokens .attr")
    expect(words).to_have_count(9)
    assert page.locator("#explain-tokens").inner_text() == TEXT
    classes = words.evaluate_all("spans => spans.map(s => s.className)")
    assert any(c.endswith("attr-pos-4") for c in classes), classes  # the strongest word: top bucket
    shade = page.locator("#explain-tokens .attr-pos-4").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert shade not in ("rgba(0, 0, 0, 0)", "transparent")  # explain.css is served and applies
    assert violations == []
    page.locator("#explain").screenshot(path=SCREENSHOT)
