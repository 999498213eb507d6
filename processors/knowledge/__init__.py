"""Domain knowledge shipped with AFEP: one JSON file per domain plus its loader."""

from processors.knowledge.base import (
    Binding,
    Domain,
    DomainMatch,
    KnowledgeBase,
    Role,
    Transformation,
    load_knowledge_base,
    parse_domain,
)

__all__ = [
    "Binding",
    "Domain",
    "DomainMatch",
    "KnowledgeBase",
    "Role",
    "Transformation",
    "load_knowledge_base",
    "parse_domain",
]
