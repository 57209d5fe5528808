"""`python -m infou_gateway` serves the API; `python -m infou_gateway keys …` manages API keys
(what an operator runs in the image; `infou keys …` is the same in development)."""

import sys

if sys.argv[1:2] == ["keys"]:
    from infou_gateway.apikeys import command

    sys.exit(command(sys.argv[2:]))

from infou_gateway.main import run

run()
