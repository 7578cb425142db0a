"""The demo: the real ABCD policy files become published articles (skipped without the data set)."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from apps.chat.management.commands.kb_demo import DATASET
from apps.chat.models import Article, Chunk
from apps.chat.services.index import kb_search

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not (DATASET / "guidelines.json").is_file(), reason="no ABCD data set"),
]


def test_kb_demo_imports_every_subflow_publishes_and_indexes(capsys):
    call_command("kb_demo")
    assert Article.objects.count() == 55 and not Article.objects.filter(published=False).exists()
    size = Article.objects.get(external_id="abcd:product_defect:return_size")
    assert size.title == "Product Defect: Return Due to Size" and size.tags == ["product_defect"]
    assert "Silver members" in size.body and "6 months" in size.body and "## Required actions" in size.body
    assert Chunk.objects.filter(embedding__isnull=True).count() == 0
    assert kb_search("Membership Privileges silver members 6 months", 3)
    call_command("kb_demo")  # again: nothing new
    assert "0 articles created, 0 updated, 55 unchanged" in capsys.readouterr().out
