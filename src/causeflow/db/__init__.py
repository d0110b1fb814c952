"""Storage: the engine, the shared metadata, migrations and the dialect seam."""
