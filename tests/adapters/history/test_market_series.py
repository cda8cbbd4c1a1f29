"""Open interest, funding, volume and implied-vol loaders (crowding add-on, calibration): README
spot checks, bad files, ports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossmargin.adapters.history.market_series import (
    CsvFunding,
    CsvImpliedVol,
    CsvOpenInterest,
    CsvVolume,
    shared_funding,
    shared_implied_vol,
    shared_open_interest,
    shared_volume,
)
from crossmargin.core.market_history import DailyPanel
from crossmargin.engine.memory import GivenFunding, GivenImpliedVol, GivenOpenInterest, GivenVolume
from crossmargin.engine.ports import FundingSource, ImpliedVolSource, OpenInterestSource, VolumeSource
from crossmargin.errors import InputError
from tests.conftest import shared_data_dir


def test_crowding_open_interest_spot_checks() -> None:
    """README: BTC OI fell from $452 M on 2022-11-07 to $297 M on 2022-11-10."""
    panel = shared_open_interest(shared_data_dir("open_interest_*.csv")).open_interest_history()
    assert panel.symbols == ("ADA", "BNB", "BTC", "DOGE", "ETH", "SOL", "XRP")
    oi = panel.on_days("BTC", np.array(["2022-11-07", "2022-11-10"], dtype="datetime64[D]"))
    assert oi[0] == pytest.approx(452e6, rel=0.01)
    assert oi[1] == pytest.approx(297e6, rel=0.01)


def test_crowding_funding_daily_and_8h_files() -> None:
    """README: 2020-03-13's mean BTC funding was -0.00127150 (file: -0.0012715033); ETH comes from the 8-hour file."""
    panel = shared_funding(shared_data_dir("funding_*.csv")).funding_history()
    assert panel.symbols == ("BTC", "ETH")
    day = np.array(["2020-03-13"], dtype="datetime64[D]")
    assert panel.on_days("BTC", day)[0] == pytest.approx(-0.0012715033, abs=1e-12)
    assert np.isnan(panel.on_days("ETH", day)[0])
    assert np.isfinite(panel.on_days("ETH", np.array(["2026-02-01"], dtype="datetime64[D]"))[0])


def test_crowding_loaders_name_the_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "oi.csv"
    bad.write_text("date,symbol,oi_close_usd\n2024-01-01,BTC,12\n2024-01-02,BTC,abc\n")
    with pytest.raises(InputError, match=r"oi.csv:3: oi_close_usd 'abc' is not a number"):
        CsvOpenInterest(path=bad).open_interest_history()
    duplicate = tmp_path / "dup.csv"
    duplicate.write_text("date,symbol,oi_close_usd\n2024-01-01,BTC,12\n2024-01-01,BTC,13\n")
    with pytest.raises(InputError, match="duplicate"):
        CsvOpenInterest(path=duplicate).open_interest_history()
    with pytest.raises(InputError, match="no funding"):
        CsvFunding(directory=tmp_path).funding_history()


def test_crowding_and_calibration_sources_are_their_ports(tmp_path: Path) -> None:
    panel = DailyPanel(
        days=np.array(["2024-01-01"], dtype="datetime64[D]"), symbols=("BTC",), values=np.ones((1, 1))
    )
    assert isinstance(CsvOpenInterest(path=tmp_path / "oi.csv"), OpenInterestSource)
    assert isinstance(GivenOpenInterest(panel=panel), OpenInterestSource)
    assert isinstance(CsvFunding(directory=tmp_path), FundingSource)
    assert isinstance(GivenFunding(panel=panel), FundingSource)
    assert isinstance(CsvVolume(path=tmp_path / "p.csv"), VolumeSource)
    assert isinstance(GivenVolume(panel=panel), VolumeSource)
    assert isinstance(CsvImpliedVol(directory=tmp_path), ImpliedVolSource)
    assert isinstance(GivenImpliedVol(panel=panel), ImpliedVolSource)


def test_calibration_volume_and_dvol_spot_checks() -> None:
    """README: BTC DVOL spiked to 114.72 on 2022-11-09 (FTX); volumes are USD per day."""
    data = shared_data_dir("dvol_*.csv")
    implied = shared_implied_vol(data).implied_volatility_history()
    day = np.array(["2022-11-09"], dtype="datetime64[D]")
    assert implied.on_days("BTC", day)[0] == pytest.approx(1.1472, abs=1e-12)
    volume = shared_volume(data).volume_history()
    assert volume.on_days("BTC", day)[0] > 1e9
