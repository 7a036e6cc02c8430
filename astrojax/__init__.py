"""astrojax."""
