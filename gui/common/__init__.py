"""Widgets and helpers shared by several tabs."""
