"""integration capability."""
