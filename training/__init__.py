"""Orchestration of the three training stages: recipes rendered into trainer configs, and runs."""
