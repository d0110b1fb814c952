"""Constraints the wire models share.

PostgreSQL text cannot hold a NUL character, which SQLite keeps: free text stored as it is
(names, descriptions) refuses it up front on every store alike, so that the same request gets
the same answer on both and a SQLite store always copies into PostgreSQL (`migrate-store`).
Text stored inside JSON is escaped and needs no such rule."""

NO_NUL = r"^[^\x00]*$"
