"""Every input limit of the public contract, owned here once: the gateway's Pydantic schemas
declare them and the services that check their own input (session-service, generation-service)
import them, so no layer re-types a number and two layers can never disagree.

PRD §3 gives examples, not limits; these are the product's choices (the shorter 50 characters
for free text, which the gateway already enforced).
"""

from __future__ import annotations

from typing import Final

# personalization (POST /sub-topics/generate and POST /sessions)
MAX_INTERESTS: Final = 10
MAX_INTEREST_CHARS: Final = 50
MAX_LEARNING_GOALS_CHARS: Final = 500
MAX_SHORT_TEXT_CHARS: Final = 50  # time_availability, preferred_style

# POST /sub-topics/generate options
DEFAULT_SUBTOPICS: Final = 5
MAX_SUBTOPICS: Final = 10

# POST /sessions options
MAX_ARTICLES_PER_SUBTOPIC: Final = 20
