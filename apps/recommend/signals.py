"""Item changes reach the index through a task (from the API, the admin or code alike);
cross-origin requests pass only for origins an active widget key lists."""

from __future__ import annotations

import re
from typing import Any

from corsheaders.signals import check_request_enabled
from django.conf import settings
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from apps.recommend.models import Item
from apps.recommend.services.background import enqueue
from apps.recommend.services.catalogue import TEXT_FIELDS
from apps.recommend.services.widget import origin_allowed


@receiver(pre_save, sender=Item)
def item_text_changed(sender: type[Item], instance: Item, **kwargs: Any) -> None:
    if instance.pk is None or instance.embedding is None:
        return
    before = Item.objects.filter(pk=instance.pk).values(*TEXT_FIELDS).first()
    if before and any(before[name] != getattr(instance, name) for name in TEXT_FIELDS):
        instance.embedding, instance.embedded_at = None, None


@receiver(post_save, sender=Item)
def item_saved(sender: type[Item], instance: Item, **kwargs: Any) -> None:
    if instance.embedding is None:  # new, or its text changed
        enqueue("item_index_update_task", [instance.pk])


@receiver(post_delete, sender=Item)
def item_deleted(sender: type[Item], instance: Item, **kwargs: Any) -> None:
    enqueue("item_index_update_task", [instance.pk])


@receiver(check_request_enabled)
def widget_origin_enabled(sender: Any, request: Any, **kwargs: Any) -> bool:
    # django-cors-headers asks this both "is CORS on for this path?" and "is this origin
    # allowed?": answer yes only for the widget routes, so no other route opens to any origin.
    if not re.match(settings.CORS_URLS_REGEX, request.path_info):
        return False
    return origin_allowed(request.headers.get("Origin", ""))
