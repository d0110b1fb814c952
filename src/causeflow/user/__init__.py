"""user capability."""
