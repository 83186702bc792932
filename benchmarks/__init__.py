"""Benchmarks: our engine vs transformers on the same checkpoint, in one run (`python main.py bench`)."""
