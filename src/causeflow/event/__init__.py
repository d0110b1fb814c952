"""event capability."""
