"""What model calls cost: US dollars per million input and output tokens, per `provider:model`.

The packaged table (`prices.json`) holds vendors' list prices for the models Genway routes to by
default; a JSON file of the same shape (`GENWAY_MODEL_PRICES_FILE`) adds models or replaces
prices, e.g. `{"openai:llama3.1:8b": [0, 0]}` for a local server. A served model name that is a
dated variant of a priced one (`gpt-4o-mini-2024-07-18`) takes that one's price: the longest
priced name it starts with. Costs are counted in micro-dollars, so they add up exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

MICRO = 1_000_000


class PriceTableError(ValueError):
    """A price file that is not an object of `provider:model` to [input, output] prices."""


@dataclass(frozen=True)
class PriceTable:
    per_million: dict[str, tuple[float, float]]

    def price_of(self, provider: str, model: str) -> tuple[float, float] | None:
        """(input, output) dollars per million tokens, or None when the model is not priced."""
        name = f"{provider}:{model}"
        if name in self.per_million:
            return self.per_million[name]
        prefixes = [key for key in self.per_million if name.startswith(key)]
        return self.per_million[max(prefixes, key=len)] if prefixes else None

    def cost_microusd(
        self, provider: str, model: str, tokens_in: int, tokens_out: int
    ) -> int | None:
        """The call's cost in millionths of a dollar (None: the model is not priced)."""
        price = self.price_of(provider, model)
        if price is None:
            return None
        # Dollars per million tokens are micro-dollars per token.
        return round(tokens_in * price[0] + tokens_out * price[1])


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The packaged prices, with the file at `path` (if any) adding or replacing entries.
    Raises PriceTableError, OSError."""
    packaged = resources.files("genway.engines.llm").joinpath("prices.json")
    table = _parse(packaged.read_text(encoding="utf-8"), "prices.json")
    if path is not None:
        table.update(_parse(Path(path).read_text(encoding="utf-8"), str(path)))
    return PriceTable(table)


def _parse(text: str, source: str) -> dict[str, tuple[float, float]]:
    try:
        raw: Any = json.loads(text)
    except ValueError as exc:
        raise PriceTableError(f"{source}: not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise PriceTableError(f"{source}: expected an object of 'provider:model' to prices")
    table: dict[str, tuple[float, float]] = {}
    for name, price in raw.items():
        valid = (
            isinstance(price, list)
            and len(price) == 2
            and all(
                isinstance(p, int | float) and not isinstance(p, bool) and p >= 0 for p in price
            )
        )
        if ":" not in name or not valid:
            raise PriceTableError(
                f"{source}: {name!r} needs [input, output] dollars per million tokens, "
                "both ≥ 0, and a 'provider:model' name"
            )
        table[name] = (float(price[0]), float(price[1]))
    return table
