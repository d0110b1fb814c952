"""tenant capability."""
