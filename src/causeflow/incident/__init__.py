"""incident capability."""
