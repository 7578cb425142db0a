"""Recommendation services: catalogue, events, index, recommenders, A/B tests, evaluation."""
