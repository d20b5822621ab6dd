"""What a product is: its fields, as commands set them and events carry them.

`ProductFields` is the one declaration of a product's fields. The write side validates product
bodies with it and records `payload(...)` of a product in its events; the read side stores
`stored(...)` of that payload and serves `served(...)` of what it stored; `cqrs-demo check`
compares the two through the same functions. Adding a field is one line here, and its column
in `write/schema.py` (a unit test keeps the two in step).

Money is exact everywhere: a JSON number on the wire, decimal text ("120.00") in events,
integer cents in the read model. It never passes through a binary float.
"""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Annotated, Any, Mapping

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StringConstraints

MAX_QUANTITY = 2**31 - 1  # PostgreSQL integer
MAX_PRICE = Decimal("9999999999.99")  # NUMERIC(12, 2)
CENT = Decimal("0.01")

# What `str.strip` removes, spelled out for the documents' patterns, so that any client's
# regular expression engine (JavaScript, Rust, Python) reads "blank" as the service does.
_SPACE = r"\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_NUL = r"^[^\x00]*$"
NOT_BLANK_NO_NUL = rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$"


class JsonNumber:
    """Documents a `Decimal` as the JSON number it travels as.

    `web.JsonProvider` reads and writes decimals as JSON numbers; pydantic would otherwise
    document "a number or a string". Documents are generated in validation mode, where the
    number's bounds are kept.
    """

    def __get_pydantic_json_schema__(self, core_schema, handler):
        schema = handler(core_schema)
        numbers = [option for option in schema.get("anyOf", [schema]) if option.get("type") == "number"]
        return numbers[0] if numbers else {"type": "number"}


def _json_number_only(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError("must be a JSON number")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError("must be a finite number")
    return value


def _integral_number(value: Any) -> Any:
    # JSON has one kind of number, and JSON Schema's "integer" is any number without a fraction:
    # 3.0 and 3E+2 are integers, 3.5 and "3" are not. (Bounded first, by the exponent alone:
    # int() of 1E+999999999 would build a billion digits.)
    if not (isinstance(value, Decimal) and value.is_finite() and value.adjusted() < 20):
        return value
    return int(value) if value == value.to_integral_value() else value


def integer(ge: int, le: int) -> Any:
    """A JSON integer from `ge` to `le`; never a boolean, a string or a fraction."""
    return Annotated[StrictInt, Field(ge=ge, le=le), BeforeValidator(_integral_number)]


def _no_nul(value: str) -> str:
    # PostgreSQL text and MongoDB regular expressions cannot hold NUL: refused here, it stays a
    # client error instead of a 500.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _trimmed_not_blank(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


def text(max_length: int) -> Any:
    """Free text of at most `max_length` characters, without NUL."""
    return Annotated[
        str,
        StringConstraints(max_length=max_length),
        AfterValidator(_no_nul),
        Field(json_schema_extra={"pattern": NO_NUL}),
    ]


def label(max_length: int) -> Any:
    """A name or a code: at most `max_length` characters as sent, stored trimmed; not blank, no NUL."""
    return Annotated[
        str,
        StringConstraints(max_length=max_length),
        AfterValidator(_no_nul),
        AfterValidator(_trimmed_not_blank),
        Field(json_schema_extra={"pattern": NOT_BLANK_NO_NUL}),
    ]


# The bounds come before the check for a JSON number, so that they reach the number's schema.
Money = Annotated[
    Decimal, Field(ge=0, le=MAX_PRICE, multiple_of=CENT), BeforeValidator(_json_number_only), JsonNumber()
]
Stock = integer(0, MAX_QUANTITY)
Name = label(100)
Sku = label(64)
Description = text(2000)


class ProductFields(BaseModel):
    """A product as a client sets it: the body that creates a product, and that replaces one (PUT)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {"name": "Product A", "description": "Product Test", "price": 120, "quantity": 3, "sku": "SKU-DEMO-0024"}
            ]
        },
    )

    name: Name
    description: Description = ""
    price: Money
    quantity: Stock
    sku: Sku


FIELDS: tuple[str, ...] = tuple(ProductFields.model_fields)
_KINDS = {name: field.annotation for name, field in ProductFields.model_fields.items()}
MONEY = frozenset(name for name, kind in _KINDS.items() if kind is Decimal)
_DEFAULTS = {name: field.default for name, field in ProductFields.model_fields.items() if not field.is_required()}


def money_text(amount: Decimal) -> str:
    return str(Decimal(amount).quantize(CENT))


# Money is never rounded: an amount finer than a cent (or too long to hold exactly) raises
# decimal.Inexact, an ArithmeticError, which makes its event malformed instead of quietly off.
_EXACT = Context(traps=[Inexact, InvalidOperation])


def cents(amount: str | Decimal) -> int:
    return int(_EXACT.multiply(Decimal(amount), 100).to_integral_exact(context=_EXACT))


def money(amount_cents: int) -> Decimal:
    return (Decimal(amount_cents) / 100).quantize(CENT)


def stored_name(name: str) -> str:
    """The read model's name for a field: money is stored as `<name>_cents`."""
    return f"{name}_cents" if name in MONEY else name


def payload(product: Mapping[str, Any]) -> dict[str, Any]:
    """A product's fields as its events carry them: money as exact decimal text."""
    return {name: money_text(product[name]) if name in MONEY else product[name] for name in FIELDS}


def stored(payload: Mapping[str, Any]) -> dict[str, Any]:
    """An event's product fields as the read model stores them: money as integer cents.

    A field with a default may be missing: events recorded before it existed read as its
    default, so adding such a field needs no change to the event log. KeyError, ValueError or
    ArithmeticError for a payload that does not carry a product.
    """
    return {stored_name(name): _store(_KINDS[name], _carried(payload, name)) for name in FIELDS}


def _carried(payload: Mapping[str, Any], name: str) -> Any:
    return payload.get(name, _DEFAULTS[name]) if name in _DEFAULTS else payload[name]


def _store(kind: Any, value: Any) -> Any:
    if kind is Decimal:
        return cents(value)
    if kind is int:
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return value


def served(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A stored product's fields as clients read them.

    A partial document (deduplication switched off, a demonstration mode) reads as zero and
    empty text where a field is missing.
    """
    return {name: _serve(_KINDS[name], doc.get(stored_name(name))) for name in FIELDS}


def _serve(kind: Any, value: Any) -> Any:
    if kind is Decimal:
        return money(value or 0)
    if kind is int:
        return value or 0
    return value if value is not None else ""
