"""The web dashboard at `/ui`: server-rendered pages over the service's own public API."""
