"""GET /levels (PRD §3.1), from catalog-service's Postgres through the cache."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from google.protobuf.json_format import MessageToDict

from infou_gateway.cache import LEVELS_KEY, LEVELS_TTL, Target
from infou_gateway.schemas import LevelsResponse
from infou_gateway.state import State
from infou_protos.catalog.v1 import catalog_pb2

router = APIRouter(tags=["catalog"])


@router.get("/levels", response_model=LevelsResponse)
async def list_levels(state: State, request: Request) -> Any:
    async def load() -> dict[str, Any]:
        reply = await state.clients.catalog.ListLevels(
            catalog_pb2.ListLevelsRequest(), timeout=state.clients.deadline
        )
        return {
            "levels": [
                MessageToDict(
                    level,
                    preserving_proto_field_name=True,
                    always_print_fields_with_no_presence=True,
                )
                for level in reply.levels
            ]
        }

    body = await state.cache.served(
        "levels",
        LEVELS_KEY,
        "",
        LEVELS_TTL,
        lambda: state.cache.get_or_load_encoded("levels", LEVELS_KEY, LEVELS_TTL, load),
        Target.of(request),
    )
    return Response(body, media_type="application/json")
