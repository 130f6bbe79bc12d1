"""OpenAI's error object, and the handlers that make every failure one.

Callers' mistakes are 4xx: the SDK retries 5xx (and 408/409/429), so a 5xx for a bad
parameter would triple the wait before the student sees the message.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from labkit.engine.loop import Busy
from labkit.errors import InvalidRequestError, NotFoundError, UnknownModelError
from labkit.server.schemas import UNION_TAG

log = logging.getLogger(__name__)


class APIError(Exception):
    """headers: e.g. a 429's Retry-After, which the SDK reads to pace its retries."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.type, self.param, self.code, self.headers)


def error_response(status: int, message: str, type: str = "invalid_request_error",
                   param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def param_path(loc: tuple) -> str | None:
    """pydantic's location -> OpenAI's param spelling: ('messages', 0, 'role') -> 'messages.[0].role'."""
    parts = [f"[{x}]" if isinstance(x, int) else str(x) for x in loc if x != "body"]
    # drop pydantic's union-branch labels such as 'str', 'list[str]', 'function-after[...]'
    # and the tags of unions picked by a field's value, such as 'role=user' (labkit.server.schemas._tagged)
    parts = [p for p in parts if not (("[" in p and not p.startswith("[")) or "=" in p
                                      or p in {"str", "int", "float", "bool"})]
    return ".".join(parts) or None


def from_validation_error(err: ValidationError) -> APIError:
    first = err.errors()[0]
    tag_field = first["type"].removeprefix(UNION_TAG) if first["type"].startswith(UNION_TAG) else None
    param = param_path((*first["loc"], *([tag_field] if tag_field else [])))
    if first["type"] == "extra_forbidden":
        return APIError(400, f"Unrecognized request argument supplied: {param}", param=param)
    if first["type"] == "missing":
        return APIError(400, f"Missing required parameter: '{param}'.", param=param,
                        code="missing_required_parameter")
    got = first.get("input")
    shown = repr(got) if len(repr(got)) < 80 else type(got).__name__
    return APIError(400, f"Invalid value for '{param}': {first['msg']} (got {shown}).", param=param,
                    code="invalid_value" if tag_field or "type" not in first["type"] else "invalid_type")


def model_not_found(name: str, why: str = "") -> APIError:
    msg = f"The model `{name}` does not exist or you do not have access to it."
    return APIError(404, msg + (f" {why}" if why else ""), param="model", code="model_not_found")


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api(_: Request, e: APIError):
        return e.response()

    @app.exception_handler(InvalidRequestError)
    async def _invalid(_: Request, e: InvalidRequestError):
        return error_response(400, e.message, param=e.param, code=e.code)

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, e: NotFoundError):
        return error_response(404, e.message, param=e.param, code=e.code)

    @app.exception_handler(Busy)
    async def _busy(_: Request, e: Busy):  # the engine loop's queue is full: try again shortly
        response = error_response(429, f"The server is busy: {e}. Please retry after {e.retry_after:.0f} s.",
                                  type="requests", code="rate_limit_exceeded")
        response.headers["Retry-After"] = f"{math.ceil(e.retry_after)}"
        return response

    @app.exception_handler(UnknownModelError)
    async def _unknown(_: Request, e: UnknownModelError):
        return model_not_found(e.model, str(e)).response()

    @app.exception_handler(ValidationError)
    async def _validation(_: Request, e: ValidationError):
        return from_validation_error(e).response()

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, e: RequestValidationError):
        first = e.errors()[0]
        return error_response(400, f"Invalid request: {first['msg']}", param=param_path(tuple(first["loc"])))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, e: HTTPException):
        msg = {404: f"Invalid URL ({request.method} {request.url.path}): labkit serves /v1/models, "
                    "/v1/completions, /v1/chat/completions, /v1/responses, /v1/embeddings, /v1/files and "
                    "/v1/fine_tuning/jobs",
               405: f"Method {request.method} is not allowed for {request.url.path}"}.get(e.status_code, str(e.detail))
        return error_response(e.status_code, msg)

    @app.exception_handler(Exception)
    async def _crash(_: Request, e: Exception):
        log.exception("server fault")
        return error_response(500, f"The server had an error while processing your request: {e!r}",
                              type="server_error")
