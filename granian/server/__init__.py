"""See docs/internals.md for this package's contract."""
