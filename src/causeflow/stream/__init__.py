"""stream capability."""
