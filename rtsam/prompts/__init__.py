"""Prompts derived from clinical data (the dose-guided box)."""
