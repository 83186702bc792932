"""Widgets of the Vision tab."""
