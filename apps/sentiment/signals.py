"""Signals of the sentiment app.

``scores_committed`` is sent after a scoring transaction commits (never for one that rolled
back), once for each series basis the batch wrote: a live scoring batch sends
``basis="live"`` and ``basis=<model version>``, a rescoring batch only ``basis=<version>``.
Receivers that follow what analysts see live (alert rules, the live feed) keep
``basis == "live"``. Keyword arguments:

- ``entity_ids``: sorted ids of the entities that got an entity score (may be empty);
- ``basis``: ``"live"`` or a model version;
- ``since`` / ``until``: earliest and latest ``published_at`` of those entity scores (None
  when there are none): the buckets that changed lie in this range;
- ``document_ids``: the documents scored in the batch (with or without entities);
- ``model_version``: the version that scored them.
"""

from __future__ import annotations

from django.dispatch import Signal

scores_committed = Signal()
