"""Inputs -> model tensors, each processor built from the checkpoint folder's config files.

``image``  resize / crop / rescale / normalise / pad as transformers' image processors do, with a
           resampler that gives the same bytes as Pillow's (without Pillow at run time).
"""
