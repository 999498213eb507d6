"""AFEP processors layer."""
