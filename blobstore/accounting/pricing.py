"""Price lists for cost reports: storage per GB-month and egress per GB, as exact decimals.

Storage may have a price per S3 storage class (blobstore.model.transitions) where the provider has one; a
class without its own price costs the list's ``storage_per_gb_month``. The AWS prices are the us-east-1 list
prices of aws.amazon.com/s3/pricing (first tier): STANDARD 0.023, INTELLIGENT_TIERING 0.023 (its Frequent
Access tier: the dearest it bills), STANDARD_IA 0.0125, ONEZONE_IA 0.01, GLACIER_IR 0.004; Cloudflare R2's
Infrequent Access (STANDARD_IA through its S3 API) is 0.01 (developers.cloudflare.com/r2/pricing). Retrieval
fees and the minimum storage durations of the colder classes are not counted.

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
    #: (storage class, price per GB-month) of the classes priced apart from ``storage_per_gb_month``.
    class_prices: tuple[tuple[str, Decimal], ...] = ()

    def storage_price(self, storage_class: str | None = None) -> Decimal:
        """The price per GB-month of ``storage_class`` (None: the list's storage price)."""
        return dict(self.class_prices).get(storage_class or "", self.storage_per_gb_month)

    def storage_cost(self, nbytes: int, storage_class: str | None = None) -> Decimal:
        """The exact monthly cost of keeping ``nbytes`` stored (in ``storage_class``)."""
        return _per_gb(nbytes, self.storage_price(storage_class))

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
            "storage_class_prices": {name: decimal_text(price) for name, price in self.class_prices},
        }


_AWS_EGRESS = Decimal("0.09")
#: AWS S3 storage per GB-month by class (us-east-1, first tier); STANDARD is each preset's own price.
_AWS_CLASSES = tuple(
    (name, Decimal(price))
    for name, price in [
        ("INTELLIGENT_TIERING", "0.023"),
        ("STANDARD_IA", "0.0125"),
        ("ONEZONE_IA", "0.01"),
        ("GLACIER_IR", "0.004"),
    ]
)

#: Public list prices (first tier, US regions) per GB-month of storage and per GB of egress.
PRESETS: dict[str, PriceList] = {
    preset.name: preset
    for preset in [
        PriceList("aws-s3-standard", Decimal("0.023"), _AWS_EGRESS, class_prices=_AWS_CLASSES),
        PriceList("aws-s3-standard-ia", Decimal("0.0125"), _AWS_EGRESS, class_prices=_AWS_CLASSES),
        PriceList("aws-s3-glacier-ir", Decimal("0.004"), _AWS_EGRESS, class_prices=_AWS_CLASSES),
        PriceList("cloudflare-r2", Decimal("0.015"), Decimal("0"), class_prices=(("STANDARD_IA", Decimal("0.01")),)),
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
    egress = parse_price(egress_price_per_gb, "egress price per GB")
    return PriceList(base.name, base.storage_per_gb_month, egress, base.currency, base.class_prices)


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
