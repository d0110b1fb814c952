"""Test harness shared by every test suite: real processes, receivers and databases.

Nothing here is mocked: services run as OS processes, webhook receivers are loopback HTTP
servers, and databases are real PostgreSQL (the shared server or a private cluster).
"""
