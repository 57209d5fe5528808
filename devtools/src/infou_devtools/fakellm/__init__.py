"""A fake LLM server for tests and benchmarks: OpenAI and Anthropic wire formats, with faults.

`FakeLLMServer().start()` runs it in a thread on a free port; `python -m infou_devtools.fakellm
--port N` runs it on its own. `FakeLLMControl(url)` arms faults and reads the counters.
"""

from infou_devtools.fakellm.app import SCENARIOS, FakeState, create_app
from infou_devtools.fakellm.server import FakeLLMControl, FakeLLMServer

__all__ = ["SCENARIOS", "FakeLLMControl", "FakeLLMServer", "FakeState", "create_app"]
