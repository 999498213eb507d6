"""AFEP gateway layer."""
