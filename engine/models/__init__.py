"""Our own compact implementations, one architecture per file (see DESIGN.md)."""
