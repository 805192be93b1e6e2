"""@metered: one event per successful call of a function or handler (sync or async).

    @metered(metric="llm_tokens", quantity=lambda reply: reply.usage.total_tokens,
             subject=lambda request, **_: {"api_key": request.headers["X-API-Key"]})
    def complete(request): ...

`quantity` is a constant or a function of the return value; the subject is a constant
(`api_key=` / `customer_id=` / `subscription_id=`) or `subject(*args, **kwargs)` → a dict (None:
not billed). A call that raises is not billed unless `meter_errors=True` (then with the
constant quantity, or 1)."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, TypeVar, cast

from .client import Client
from .events import Quantity
from .metering import Subject, default_client

F = TypeVar("F", bound=Callable[..., Any])


def metered(
    *,
    metric: str,
    quantity: Quantity | Callable[[Any], Quantity] = 1,
    client: Client | None = None,
    api_key: str | None = None,
    customer_id: int | None = None,
    subscription_id: int | None = None,
    subject: Callable[..., Subject | None] | None = None,
    dimensions: dict[str, str] | None = None,
    meter_errors: bool = False,
) -> Callable[[F], F]:
    fixed = {name: value for name, value in (("api_key", api_key), ("customer_id", customer_id),
                                              ("subscription_id", subscription_id)) if value is not None}
    if bool(fixed) == (subject is not None) or len(fixed) > 1:
        raise ValueError("give exactly one of api_key, customer_id, subscription_id or subject")

    def emit(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, failed: bool) -> None:
        who = fixed or (subject(*args, **kwargs) if subject is not None else None)
        if not who:
            return
        if callable(quantity):
            amount: Quantity = 1 if failed else quantity(result)
        else:
            amount = quantity
        (client or default_client()).record(metric=metric, quantity=amount, dimensions=dimensions, **who)

    def decorate(function: F) -> F:
        if inspect.iscoroutinefunction(function):
            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    result = await function(*args, **kwargs)
                except BaseException:
                    if meter_errors:
                        emit(args, kwargs, None, True)
                    raise
                emit(args, kwargs, result, False)
                return result

            return cast(F, async_wrapper)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                result = function(*args, **kwargs)
            except BaseException:
                if meter_errors:
                    emit(args, kwargs, None, True)
                raise
            emit(args, kwargs, result, False)
            return result

        return cast(F, wrapper)

    return decorate
