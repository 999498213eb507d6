"""Event serialisation: JSON for the store, Avro for the wire; schemas under schemas/avro/."""
