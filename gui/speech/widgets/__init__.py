"""Widgets of the Speech tab."""
