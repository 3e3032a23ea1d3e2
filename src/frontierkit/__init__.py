"""frontierkit: frontier AI techniques, each implemented once, readable, proven against the reference."""
__version__ = "0.1.0"
