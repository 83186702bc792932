"""Widgets of the Text tab, shared by its presenters."""
