"""Feature engines under benchmark; each runs in its own subprocess."""
