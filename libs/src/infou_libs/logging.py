"""Structured JSON logging (PRD §6.3 fields) with personal data masked."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from pydantic import BaseModel

# Keys whose values are learner text or secrets: never logged as they are.
SENSITIVE_KEYS = frozenset(
    {
        "comments",
        "learning_goals",
        "interests",
        "personalization",
        "personalization_input",
        "personalization_settings",
        "time_availability",
        "preferred_style",
        "device_type",
        "referrer_url",
        "client_ip",
        "user_agent",
        "authorization",
        "access_token",
        "token",
        "api_key",
        "password",
        "secret",
        "email",
    }
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_PHONE = re.compile(r"\b01[016789]-?\d{3,4}-?\d{4}\b")
_BEARER = re.compile(r"(?i)bearer\s+[\w.\-~+/=]+")
_SESSION_TOKEN = re.compile(r"\bst_[A-Za-z0-9_\-]{16,}")
_API_KEY = re.compile(r"\b(sk|sk-ant|pk)-[A-Za-z0-9_\-]{8,}")
# Where database drivers and validators quote the values they were given (exception messages,
# tracebacks): the value goes, the explanation stays.
_QUOTED_VALUES = (
    (re.compile(r"\[parameters: .*?\](?=\s*(?:\(|\[|$))", re.DOTALL), "[parameters: ***]"),
    (re.compile(r"(invalid input for query argument \$\d+: ).*?( \(|$)", re.MULTILINE), r"\1***\2"),
    (re.compile(r"(invalid input (?:syntax|value) for [^:\n]*: ).*$", re.MULTILINE), r"\1***"),
    (re.compile(r"(Key \([^)]*\)=)\(.*?\)(?= already exists| is not present|$)", re.M), r"\1(***)"),
    (re.compile(r"(Failing row contains ).*$", re.MULTILINE), r"\1(***)"),
    (re.compile(r"(input_value=).*?(?=, input_type=|\]$|$)", re.MULTILINE), r"\1***"),
)


def mask_text(text: str) -> str:
    """Masks e-mail addresses, phone numbers, bearer tokens and API keys inside free text."""
    for pattern, replacement in _QUOTED_VALUES:
        text = pattern.sub(replacement, text)
    text = _EMAIL.sub("***@***", text)
    text = _PHONE.sub("***-****-****", text)
    text = _BEARER.sub("Bearer ***", text)
    text = _SESSION_TOKEN.sub("st_***", text)
    return _API_KEY.sub(r"\1-***", text)


def mask_value(key: str, value: Any) -> Any:
    """Masks one log field: sensitive keys lose their content, strings lose embedded PII."""
    if key.lower() in SENSITIVE_KEYS and value not in (None, "", [], {}):
        if isinstance(value, str):
            return f"***({len(value)} chars)"
        return "***"
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_value(key, v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Message):
        return mask_value(key, MessageToDict(value, preserving_proto_field_name=True))
    if isinstance(value, BaseModel):
        return mask_value(key, value.model_dump(mode="json"))
    # Anything else (an exception, an object) would be rendered by its str/repr: mask that.
    return mask_text(str(value))


def mask_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: masks personal data in every field of every line."""
    for key, value in list(event_dict.items()):
        event_dict[key] = mask_value(key, value)
    return event_dict


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    """Routes structlog and stdlib logging to one JSON stream on stdout."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _add_service(service),
        structlog.processors.format_exc_info,
        mask_personal_data,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _uppercase_level,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The LLM SDKs send through httpx2 (an INFO line per request otherwise).
    noisy_loggers = (
        "httpx",
        "httpcore",
        "httpx2",
        "httpcore2",
        "asyncio",
        "alembic.runtime.migration",
    )
    for noisy in (*noisy_loggers, "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _add_service(service: str) -> Any:
    def processor(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return processor


def _uppercase_level(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if "level" in event_dict:
        event_dict["level"] = str(event_dict["level"]).upper()
    return event_dict


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger; bind PRD §6.3 fields (endpoint, session_id, …) as keywords."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
