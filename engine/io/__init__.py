"""Reading and writing files: images, audio, and every export (one JSON writer for all results)."""
