"""The app serves and evaluates the blend that bench/eval_recommend.py measures (ml.recommend.served)."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps

from apps.recommend.models import RecommenderConfig
from apps.recommend.services.blends import DEFAULT_WEIGHTS, MEMBERS, default_config
from apps.recommend.services.engine import engine_get
from apps.recommend.services.evaluation import evaluation_create
from ml.recommend.served import MEMBER_NAMES, SERVED_WEIGHTS, TRENDING_HALF_LIFE_DAYS
from tests.recommend.factories import START, fitted_shop

pytestmark = pytest.mark.django_db

SERVED = {name for name, weight in SERVED_WEIGHTS.items() if weight > 0}


def test_the_default_blend_is_the_served_one():
    assert MEMBERS == MEMBER_NAMES and "trending" in MEMBERS
    assert DEFAULT_WEIGHTS == SERVED_WEIGHTS
    assert default_config().weights == SERVED_WEIGHTS


def test_a_fit_holds_every_member_and_the_default_blend_uses_the_evaluated_ones():
    fitted_shop()

    fitted = engine_get()
    config = default_config()
    blend = fitted.blend(config.weights, config.diversity)

    assert set(fitted.members) == set(MEMBER_NAMES)
    trending = fitted.members["trending"]  # as loaded back from disk
    assert (trending.half_life_days, trending.reason_kind) == (TRENDING_HALF_LIFE_DAYS, "trending")
    assert {m.name for m in blend.members} == SERVED
    assert blend.weights == {name: SERVED_WEIGHTS[name] for name in SERVED}


def test_the_evaluation_page_evaluates_the_served_blend():
    fitted_shop()

    run = evaluation_create(cutoff=START.replace(day=7), k=5, kinds=["purchase"], user=None)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert set(MEMBER_NAMES) | {"blend"} <= set(run.results["results"])
    assert run.results["blend_weights"] == {name: SERVED_WEIGHTS[name] for name in SERVED}


def test_the_migration_moves_an_untouched_default_to_the_served_blend_and_back():
    migration = importlib.import_module("apps.recommend.migrations.0002_default_blend_served")
    untouched = RecommenderConfig.objects.create(name="default", weights=migration.OLD_DEFAULT)

    migration.forwards(django_apps, None)
    untouched.refresh_from_db()
    assert untouched.weights == migration.SERVED_DEFAULT == SERVED_WEIGHTS

    migration.backwards(django_apps, None)
    untouched.refresh_from_db()
    assert untouched.weights == migration.OLD_DEFAULT

    RecommenderConfig.objects.filter(pk=untouched.pk).update(weights={"popularity": 1.0})  # an A/B winner
    migration.forwards(django_apps, None)
    untouched.refresh_from_db()
    assert untouched.weights == {"popularity": 1.0}
