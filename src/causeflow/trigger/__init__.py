"""trigger capability."""
