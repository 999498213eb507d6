"""Operations: local services, demo data, deployment helpers."""
