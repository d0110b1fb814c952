"""approval capability."""
