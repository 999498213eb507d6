"""Agents that think with a model and research the web; offline stays the default.

- `port.py`: the LLM and web-search ports, the request/reply records, the typed failures;
- `claude.py`: `AnthropicLLM` (Messages API); `web.py`: `TavilySearch`; `scripted.py`:
  `KnowledgeBaseLLM`, an offline stand-in that answers as a model would from the knowledge base;
- `session.py`: per-agent calls with the job's budget, the cache, coalescing, retries,
  repair and a trace per call; `usage.py`: a job's usage read back from its traces;
- `prompts/`: the versioned prompt files;
- one module per step: `semantics.py` (schema), `web_research.py`, `ideas.py`,
  `competition.py` (competing code); `steps.py` glues them to the agents with fallbacks.

The agents use all this only when the workbench carries `LLMServices` (`bench.llm`),
which `gateway/runtime_wiring.py` builds when AFEP_ANTHROPIC_API_KEY is set.
"""

from processors.llm.port import BudgetExhausted, Limits, LLMRequest, LLMUnavailable, Models
from processors.llm.session import LLMServices, LLMSession

__all__ = ["BudgetExhausted", "LLMRequest", "LLMServices", "LLMSession", "LLMUnavailable", "Limits", "Models"]
