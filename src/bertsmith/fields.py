"""Field types and helpers shared by the spec models (``arch``, ``kinds``, the search space and configs)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails

_SHOWN = 60  # characters of a value's repr shown in an error message


def _not_bool(value: Any) -> Any:
    """Refuse a boolean where a number is expected (pydantic alone reads ``true`` as 1)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]  # an int that is never a bool
Float = Annotated[float, BeforeValidator(_not_bool)]  # a float that is never a bool
PositiveInt = Annotated[Int, Field(gt=0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def short_repr(value: Any) -> str:
    """``repr(value)`` on one line, cut to its start when long (a message never quotes a whole file)."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(text)} characters)"


def field_error(field: str, value: Any, message: str) -> ValidationError:
    """A validation error located at ``field`` of the model being validated: raised from a validator, it
    reads ``outer.path.field: message`` like an error pydantic finds there itself."""
    detail = InitErrorDetails(type="value_error", loc=(field,), input=value, ctx={"error": ValueError(message)})
    return ValidationError.from_exception_data("spec", [detail])
