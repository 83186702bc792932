"""The Text tab."""
