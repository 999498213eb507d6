"""AFEP commands layer."""
