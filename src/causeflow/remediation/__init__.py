"""remediation capability."""
