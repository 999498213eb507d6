"""AFEP projections layer."""
