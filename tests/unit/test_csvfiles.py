"""A user's own CSV files (sentiment/io/csvfiles.py): candles, funding, Fear & Greed.

Column names match without regard to case; times are epoch ms, epoch s or ISO-8601 text
(UTC; an offset is converted); a value that is not a finite number is an InputError naming
its column.
"""

from __future__ import annotations

import pandas as pd
import pytest

from sentiment.errors import InputError
from sentiment.io.csvfiles import parse_times, read_candles, read_fear_greed, read_funding

#: 2022-01-01 00:00 UTC
EPOCH_S = 1640995200
EPOCH_MS = EPOCH_S * 1000


def naive_datetimes(column: pd.Series) -> bool:
    """Datetimes without a time zone (UTC by convention), at any resolution."""
    return pd.api.types.is_datetime64_dtype(column) and column.dt.tz is None


def write(tmp_path, text: str, name: str = "file.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# -- candles ---------------------------------------------------------------------------------


def test_candles_mixed_case_columns_epoch_ms_sorted_turnover_derived(tmp_path):
    # Rows out of order: 01:00 then 00:00 (epoch ms). Turnover = volume x close.
    path = write(tmp_path, "timestamp,Open,High,Low,Close,Volume\n"
                           f"{EPOCH_MS + 3_600_000},102,104,101,103,3\n"
                           f"{EPOCH_MS},100,102,99,101,2.5\n")
    frame = read_candles(path, "BTCUSDT", "60")
    assert list(frame.columns) == ["symbol", "interval", "open_time", "open", "high", "low",
                                   "close", "volume", "turnover"]
    assert naive_datetimes(frame["open_time"])
    assert frame["open_time"].tolist() == [pd.Timestamp("2022-01-01 00:00"),
                                           pd.Timestamp("2022-01-01 01:00")]
    assert frame["symbol"].tolist() == ["BTCUSDT"] * 2
    assert frame["interval"].tolist() == ["60"] * 2
    assert frame["open"].tolist() == [100.0, 102.0]
    assert frame["high"].tolist() == [102.0, 104.0]
    assert frame["low"].tolist() == [99.0, 101.0]
    assert frame["close"].tolist() == [101.0, 103.0]
    assert frame["volume"].tolist() == [2.5, 3.0]
    assert frame["turnover"].tolist() == pytest.approx([2.5 * 101.0, 3.0 * 103.0])


def test_candles_iso_times_with_offsets_are_utc(tmp_path):
    path = write(tmp_path, "Date,OPEN,high,LOW,close,volume\n"
                           "2022-01-01T00:00:00Z,1,1,1,1,1\n"
                           "2022-01-01T03:00:00+02:00,1,1,1,1,1\n"
                           "2022-01-01 02:00:00,1,1,1,1,1\n")
    frame = read_candles(path, "ETHUSDT", "60")
    assert naive_datetimes(frame["open_time"])
    assert frame["open_time"].tolist() == [pd.Timestamp("2022-01-01 00:00"),
                                           pd.Timestamp("2022-01-01 01:00"),
                                           pd.Timestamp("2022-01-01 02:00")]


def test_candles_epoch_seconds(tmp_path):
    path = write(tmp_path, "open_time,open,high,low,close,volume\n"
                           f"{EPOCH_S},1,1,1,1,1\n{EPOCH_S + 14_400},1,1,1,1,1\n")
    frame = read_candles(path, "BTCUSDT", "240")
    assert frame["open_time"].tolist() == [pd.Timestamp("2022-01-01 00:00"),
                                           pd.Timestamp("2022-01-01 04:00")]


def test_candles_keep_a_given_turnover(tmp_path):
    path = write(tmp_path, "timestamp,open,high,low,close,volume,Turnover\n"
                           f"{EPOCH_MS},1,2,1,2,10,7.5\n")
    frame = read_candles(path, "BTCUSDT", "60")
    assert frame["turnover"].tolist() == [7.5]  # not 10 x 2


@pytest.mark.parametrize("value", ["", "nan", "inf", "-inf", "abc"])
def test_candles_non_finite_value_names_the_column(tmp_path, value):
    path = write(tmp_path, "timestamp,Open,High,Low,Close,Volume\n"
                           f"{EPOCH_MS},1,1,1,1,1\n"
                           f"{EPOCH_MS + 3_600_000},1,1,1,{value},1\n")
    with pytest.raises(InputError) as err:
        read_candles(path, "BTCUSDT", "60")
    assert err.value.field == "close"
    assert err.value.source == "candles"
    assert err.value.symbol == "BTCUSDT"
    assert "row 3" in str(err.value)  # the file's line: header is line 1


def test_candles_without_a_column(tmp_path):
    path = write(tmp_path, "timestamp,open,high,low,close\n" f"{EPOCH_MS},1,1,1,1\n")
    with pytest.raises(InputError) as err:
        read_candles(path, "BTCUSDT", "60")
    assert err.value.field == "volume"
    path = write(tmp_path, "when,open,high,low,close,volume\n" f"{EPOCH_MS},1,1,1,1,1\n")
    with pytest.raises(InputError) as err:
        read_candles(path, "BTCUSDT", "60")
    assert err.value.field == "open_time"


def test_missing_or_unreadable_files(tmp_path):
    with pytest.raises(InputError) as err:
        read_candles(tmp_path / "absent.csv", "BTCUSDT", "60")
    assert err.value.field == "path"
    with pytest.raises(InputError) as err:
        read_candles(write(tmp_path, ""), "BTCUSDT", "60")
    assert err.value.field == "path"


def test_times_that_are_neither_epoch_nor_iso(tmp_path):
    with pytest.raises(InputError) as err:
        parse_times(pd.Series(["2022-01-01", "yesterday-ish"]), "candles", "time")
    assert err.value.field == "time"


# -- funding ---------------------------------------------------------------------------------


def test_funding_shift_hours_and_symbol_filter(tmp_path):
    # Recorded in UTC+8 local time: 08:00 and 16:00 local are 00:00 and 08:00 UTC.
    path = write(tmp_path, "Symbol,fundingRateTimestamp,fundingRate\n"
                           "BTC-USDT,2022-01-01 08:00:00,0.0001\n"
                           "ETHUSDT,2022-01-01 08:00:00,0.0005\n"
                           "btcusdt,2022-01-01 16:00:00,-0.0002\n")
    frame = read_funding(path, "BTCUSDT", shift_hours=8)
    assert list(frame.columns) == ["symbol", "funding_time", "funding_rate"]
    assert naive_datetimes(frame["funding_time"])
    assert frame["funding_time"].tolist() == [pd.Timestamp("2022-01-01 00:00"),
                                              pd.Timestamp("2022-01-01 08:00")]
    assert frame["funding_rate"].tolist() == [0.0001, -0.0002]
    assert frame["symbol"].tolist() == ["BTCUSDT"] * 2


def test_funding_without_shift_and_epoch_ms(tmp_path):
    path = write(tmp_path, "funding_time,funding_rate\n"
                           f"{EPOCH_MS},0.0001\n{EPOCH_MS + 8 * 3_600_000},0.0003\n")
    frame = read_funding(path, "BTCUSDT")
    assert frame["funding_time"].tolist() == [pd.Timestamp("2022-01-01 00:00"),
                                              pd.Timestamp("2022-01-01 08:00")]
    assert frame["funding_rate"].tolist() == [0.0001, 0.0003]


def test_funding_non_finite_rate(tmp_path):
    path = write(tmp_path, "time,Rate\n" f"{EPOCH_MS},0.0001\n{EPOCH_MS + 1},inf\n")
    with pytest.raises(InputError) as err:
        read_funding(path, "BTCUSDT")
    assert err.value.field == "rate"
    assert err.value.source == "funding"


# -- Fear & Greed ----------------------------------------------------------------------------


def test_fear_greed_days_values_and_classification(tmp_path):
    # Epoch seconds; a time of day is normalised to its day. 0 and 100 are valid.
    path = write(tmp_path, "timestamp,Value,value_classification\n"
                           f"{EPOCH_S + 3600},0,Extreme Fear\n"
                           f"{EPOCH_S + 86_400},100,Extreme Greed\n")
    frame = read_fear_greed(path)
    assert list(frame.columns) == ["ts", "value", "classification"]
    assert naive_datetimes(frame["ts"])
    assert frame["ts"].tolist() == [pd.Timestamp("2022-01-01"), pd.Timestamp("2022-01-02")]
    assert frame["value"].tolist() == [0.0, 100.0]
    assert frame["classification"].tolist() == ["Extreme Fear", "Extreme Greed"]


def test_fear_greed_without_classification_gets_alternative_me_labels(tmp_path):
    # alternative.me's bands: 0-25 Extreme Fear, 26-46 Fear, 47-54 Neutral, 55-75 Greed,
    # 76-100 Extreme Greed.
    path = write(tmp_path, "date,value\n2022-01-01,10\n2022-01-02,40\n2022-01-03,50\n"
                           "2022-01-04,60\n2022-01-05,80\n")
    frame = read_fear_greed(path)
    assert frame["value"].tolist() == [10.0, 40.0, 50.0, 60.0, 80.0]
    assert frame["classification"].tolist() == ["Extreme Fear", "Fear", "Neutral", "Greed",
                                                "Extreme Greed"]


@pytest.mark.parametrize("value", ["101", "-1", "100.5"])
def test_fear_greed_values_outside_0_to_100_are_rejected(tmp_path, value):
    path = write(tmp_path, f"date,value\n2022-01-01,50\n2022-01-02,{value}\n")
    with pytest.raises(InputError) as err:
        read_fear_greed(path)
    assert err.value.field == "value"
    assert err.value.source == "fear_greed"


def test_fear_greed_non_finite_value(tmp_path):
    path = write(tmp_path, "date,fng_value\n2022-01-01,nan\n")
    with pytest.raises(InputError) as err:
        read_fear_greed(path)
    assert err.value.field == "fng_value"
