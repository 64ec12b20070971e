"""Price lists for cost reports: storage per GB-month and egress per GB, as exact decimals.

A GB here is 10^9 bytes (decimal), the unit most providers' price pages use.
AWS bills S3 per GiB (2^30 bytes), so its estimates here come out about 7%
high: a safe-side estimate, not an invoice. Money is :class:`decimal.Decimal`
throughout, never float, so per-tenant costs add up exactly to the total.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from blobstore.errors import InvalidInput

#: Bytes in the GB that prices are quoted per.
GB = 10**9

#: Enough digits that bytes (up to 10^19) times any price stays exact.
_PRECISION = 60


@dataclass(frozen=True)
class PriceList:
    """What storing and reading bytes costs: ``storage_per_gb_month`` and ``egress_per_gb``, in ``currency``."""

    name: str
    storage_per_gb_month: Decimal
    egress_per_gb: Decimal
    currency: str = "USD"

    def storage_cost(self, nbytes: int) -> Decimal:
        """The exact monthly cost of keeping ``nbytes`` stored."""
        return _per_gb(nbytes, self.storage_per_gb_month)

    def egress_cost(self, nbytes: int) -> Decimal:
        """The exact cost of reading ``nbytes`` out."""
        return _per_gb(nbytes, self.egress_per_gb)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; prices are decimal strings."""
        return {
            "name": self.name,
            "storage_per_gb_month": decimal_text(self.storage_per_gb_month),
            "egress_per_gb": decimal_text(self.egress_per_gb),
            "currency": self.currency,
            "gb_bytes": GB,
        }


_AWS_EGRESS = Decimal("0.09")

#: Public list prices (first tier, US regions) per GB-month of storage and per GB of egress.
PRESETS: dict[str, PriceList] = {
    preset.name: preset
    for preset in [
        PriceList("aws-s3-standard", Decimal("0.023"), _AWS_EGRESS),
        PriceList("aws-s3-standard-ia", Decimal("0.0125"), _AWS_EGRESS),
        PriceList("aws-s3-glacier-ir", Decimal("0.004"), _AWS_EGRESS),
        PriceList("cloudflare-r2", Decimal("0.015"), Decimal("0")),
        PriceList("backblaze-b2", Decimal("0.006"), Decimal("0.01")),
        PriceList("wasabi", Decimal("0.0059"), Decimal("0")),
    ]
}

DEFAULT_PRESET = "aws-s3-standard"


def price_list(
    preset: str | None = None,
    *,
    price_per_gb_month: Decimal | str | int | float | None = None,
    egress_price_per_gb: Decimal | str | int | float | None = None,
) -> PriceList:
    """A preset by name (default ``aws-s3-standard``), or a ``custom`` list from ``price_per_gb_month``.

    ``egress_price_per_gb`` overrides the egress price (a custom list's default is 0).
    Raises InvalidInput for an unknown preset, both a preset and a custom price,
    or a price that is not a finite non-negative number.
    """
    if preset is not None and price_per_gb_month is not None:
        raise InvalidInput("give either a pricing preset or a price per GB-month, not both")
    if price_per_gb_month is not None:
        base = PriceList("custom", parse_price(price_per_gb_month, "price per GB-month"), Decimal("0"))
    else:
        name = preset or DEFAULT_PRESET
        if name not in PRESETS:
            raise InvalidInput(f"unknown pricing {name!r}; choose one of: {', '.join(PRESETS)}")
        base = PRESETS[name]
    if egress_price_per_gb is None:
        return base
    return PriceList(base.name, base.storage_per_gb_month, parse_price(egress_price_per_gb, "egress price per GB"))


def parse_price(value: object, what: str = "price") -> Decimal:
    """``value`` as an exact, finite, non-negative Decimal (floats go through their shortest repr)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int | float):
        raise InvalidInput(f"invalid {what} {value!r}: expected a number")
    try:
        price = Decimal(str(value)) if isinstance(value, float | str) else Decimal(value)
    except InvalidOperation:
        raise InvalidInput(f"invalid {what} {value!r}: expected a number such as 0.023") from None
    if not price.is_finite() or price < 0:
        raise InvalidInput(f"invalid {what} {value!r}: expected a finite number >= 0")
    return price


def decimal_text(value: Decimal) -> str:
    """An exact decimal as plain digits, without exponent or trailing zeros: ``0.0000345``, ``12``."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """The exact sum of ``values`` (never rounded to the default 28 digits)."""
    with localcontext() as context:
        context.prec = _PRECISION
        return sum(values, Decimal(0))


def _per_gb(nbytes: int, price: Decimal) -> Decimal:
    with localcontext() as context:
        context.prec = _PRECISION
        return Decimal(nbytes) * price / GB
