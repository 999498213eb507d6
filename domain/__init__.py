"""AFEP domain layer."""
