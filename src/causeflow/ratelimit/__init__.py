"""Per-tenant request budgets: the limiter the gateway asks, and its shared counters."""
