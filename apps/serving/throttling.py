"""Per-token rate limits of the inference endpoints (DRF scoped throttles).

Each endpoint has a scope (``serving_embeddings``, ``serving_chat``, ``serving_classify``)
whose rate comes from the environment (see config/settings.py); a caller is its API token,
or its user for session callers, so two tokens of one user are counted apart. Counts live
in the shared throttle cache, so every server process sees the same ones.
"""

from __future__ import annotations

import hashlib
from typing import Any

from rest_framework.throttling import ScopedRateThrottle

from apps.accounts.throttling import SharedCacheMixin


class ServingRateThrottle(SharedCacheMixin, ScopedRateThrottle):
    def get_cache_key(self, request: Any, view: Any) -> str | None:
        user = request.user
        if not (user and user.is_authenticated):
            ident = self.get_ident(request)
        elif getattr(request.auth, "pk", None) is not None:
            # A digest, never the raw key, in a cache key (DRF's Token pk *is* the key).
            ident = "token-" + hashlib.sha256(str(request.auth.pk).encode()).hexdigest()[:32]
        else:
            ident = f"user-{user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
