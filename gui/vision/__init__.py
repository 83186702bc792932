"""The Vision tab: a camera, video or image, one task at a time (its presenter draws over the frame)."""
