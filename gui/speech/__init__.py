"""The Speech tab: microphone and audio files, speech recognition and audio classification."""
