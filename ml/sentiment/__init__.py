"""Financial sentiment for ``apps.sentiment`` (pure Python: no Django)."""
