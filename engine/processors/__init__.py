"""Inputs -> model tensors, each processor built from the checkpoint folder's config files.

``image``      resize / crop / rescale / normalise / pad as transformers' image processors do, with a
               resampler that gives the same bytes as Pillow's (without Pillow at run time).
``audio``      the one audio resampler (streaming polyphase, = scipy's resample_poly; files and the
               microphone) and the wav2vec2 feature extractor's settings.
``ctc``        CTC vocabulary and greedy decoding with character / word offsets.
``tokenizer``  a checkpoint's text tokenizer through the ``tokenizers`` library.

All but ``image``'s tensor step are torch-free: the GUI may use them.
"""
