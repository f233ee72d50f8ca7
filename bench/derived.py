"""Derived symbols for the scale benchmarks: the bundled year under more names.

The bundle records two symbols. A desk tracks dozens, so the benchmarks serve 20: BTCUSDT
and ETHUSDT as recorded, and 18 *derived* ones, named ``D01BTCUSDT`` ... ``D09ETHUSDT`` (the
``D`` and the number mark them derived), whose bars are the recorded bars with every price
multiplied by a factor between 0.5 and 2 and the volume divided by it (the same notional).
They are not market data: they only make the work of 20 symbols. Funding is copied; open
interest and long/short, synthetic in the bundle already, are derived by the replay exchange
from each symbol's bars, as for the recorded two.
"""

from __future__ import annotations

import gzip
import shutil
from decimal import Decimal
from pathlib import Path

import pandas as pd

BUNDLE = Path(__file__).resolve().parents[1] / "replay" / "data"
RECORDED = ("BTCUSDT", "ETHUSDT")


def derived_symbols(n: int) -> list[str]:
    """The recorded symbols, then derived ones up to ``n`` symbols in all."""
    names = list(RECORDED)
    k = 1
    while len(names) < n:
        for base in RECORDED:
            if len(names) < n:
                names.append(f"D{k:02d}{base}")
        k += 1
    return names


def _factor(name: str) -> Decimal:
    """0.5 .. 2 by the symbol's number (1 for the recorded symbols)."""
    if name in RECORDED:
        return Decimal(1)
    k = int(name[1:3])
    return Decimal(2) ** (Decimal(k - 5) / 4)  # 2**-1 .. 2**1 for k = 1 .. 9


def write_bundle(directory: Path, n: int) -> list[str]:
    """A replay bundle with ``n`` symbols in ``directory``; returns their names."""
    directory.mkdir(parents=True, exist_ok=True)

    def read(name: str) -> pd.DataFrame:
        return pd.read_csv(BUNDLE / name, dtype=str, keep_default_na=False, compression="gzip")

    candles, funding = read("candles_60.csv.gz"), read("funding.csv.gz")
    names = derived_symbols(n)
    out_c, out_f = [], []
    for name in names:
        base = next(b for b in RECORDED if name.endswith(b))
        factor = _factor(name)
        c = candles[candles["symbol"] == base].copy()
        c["symbol"] = name
        if factor != 1:
            for col in ("open", "high", "low", "close"):
                c[col] = [str((Decimal(v) * factor).quantize(Decimal("0.0001")))
                          for v in c[col]]
            c["volume"] = [str((Decimal(v) / factor).quantize(Decimal("0.001")))
                           for v in c["volume"]]
        out_c.append(c)
        f = funding[funding["symbol"] == base].copy()
        f["symbol"] = name
        out_f.append(f)
    for name, frames in (("candles_60.csv.gz", out_c), ("funding.csv.gz", out_f)):
        with gzip.open(directory / name, "wt", newline="") as fh:
            pd.concat(frames, ignore_index=True).to_csv(fh, index=False)
    shutil.copy(BUNDLE / "fear_greed.csv.gz", directory / "fear_greed.csv.gz")
    return names


def config_text(symbols: list[str], start_date: str, **replace: str) -> str:
    """The project's sentiment.yaml for ``symbols`` from ``start_date`` (and textual
    replacements ``old=new``)."""
    text = (Path(__file__).resolve().parents[1] / "sentiment.yaml").read_text()
    text = text.replace("symbols: [BTCUSDT, ETHUSDT]", f"symbols: [{', '.join(symbols)}]")
    text = text.replace('start_date: "2022-01-01"', f'start_date: "{start_date}"')
    for old, new in replace.items():
        text = text.replace(old, new)
    return text
