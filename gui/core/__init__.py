"""The app's core: the engine client (QThread workers, per-request handles), the task-tab base, settings."""
