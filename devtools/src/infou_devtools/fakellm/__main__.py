"""`python -m infou_devtools.fakellm --port N`: the fake LLM server on its own."""

from __future__ import annotations

import argparse

import uvicorn

from infou_devtools.fakellm.app import FakeState, create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI/Anthropic server for InfoU")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="time to first token")
    parser.add_argument("--tps", type=float, default=0.0, help="tokens per second (0: instant)")
    args = parser.parse_args()
    state = FakeState(base_config={"ttft_ms": args.ttft_ms, "tps": args.tps})
    state.reset()
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
