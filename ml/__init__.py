"""Trellis ML core: model hosting, inference and fine-tuning. Never imports Django."""
