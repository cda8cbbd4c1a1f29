"""Black-76 cross-checked against QuantLib's BlackCalculator at several hundred random points.

QuantLib is an independent implementation (Ametrano, Ballabio et al.); its BlackCalculator takes
the forward, the total standard deviation σ√T and the discount factor, exactly Black-76's inputs.
Greek conventions, QuantLib vs `crossmargin.core.pricing.black76`:

    value()           = DF·ω·[F·N(ωd1) - K·N(ωd2)]                         = Black76.value
    deltaForward()    = ∂V/∂F = DF·ω·N(ωd1)                                 = Black76.delta
    gammaForward()    = ∂²V/∂F² = DF·φ(d1)/(F·σ√T)                          = Black76.gamma
    vega(T)           = ∂V/∂σ = DF·F·φ(d1)·√T  (per 1.00 of vol)            = Black76.vega
    theta(spot, T)    = -(ln(DF)·V + ln(F/spot)·spot·Δ_spot + ½σ²T·spot²·Γ_spot)/T,
                        QuantLib's Black-Scholes-PDE theta, per year. With spot = F the carry
                        term vanishes (a futures-style underlying held fixed as time passes) and
                        Γ_spot = gammaForward, so theta(F, T) = r·V - DF·F·φ(d1)·σ/(2√T)
                                                                            = Black76.theta_per_year

Tolerance: REL_TOLERANCE relative, plus an absolute floor ABS_FLOOR × the greek's natural scale
(F for value, vega and theta; 1 for delta; 1/F for gamma). QuantLib builds a put from
-1 + N(d1) and 1 - N(d2), so deep out-of-the-money puts carry ~1e-16·F of cancellation error in
QuantLib itself; the floor (1e-12·F) only matters for such tiny values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813 - the conventional alias

from crossmargin.core.instruments import Instrument, InstrumentKind, InstrumentTable, OptionType, Settlement
from crossmargin.core.market import NS_PER_YEAR, MarketState
from crossmargin.core.pricing import black76, black76_scenario_values, implied_vol, revalue
from crossmargin.errors import PricingError

REL_TOLERANCE = 1e-9
ABS_FLOOR = 1e-12
N_POINTS = 400
SEED = 20240101
VALUATION_NS = 1_704_067_200 * 10**9
NS_PER_DAY = 86_400 * 10**9


def _points(seed: int, n: int = N_POINTS) -> dict[str, np.ndarray]:
    """Random Black-76 inputs: K/F in [0.5, 2], expiry 1 day..2 years (whole days), vol 0.1..2.0,
    rate -2 %..8 %, calls and puts, forwards spanning altcoins to BTC."""
    rng = np.random.default_rng(seed)
    forward = np.exp(rng.uniform(np.log(0.5), np.log(150_000.0), n))
    days = rng.integers(1, 731, n)
    return {
        "forward": forward,
        "strike": forward * rng.uniform(0.5, 2.0, n),
        "days": days,
        "years": days / 365.0,
        "vol": rng.uniform(0.1, 2.0, n),
        "rate": rng.uniform(-0.02, 0.08, n),
        "sign": rng.choice([-1.0, 1.0], n),
    }


def _quantlib(
    forward: float, strike: float, years: float, vol: float, rate: float, sign: float
) -> dict[str, float]:
    option_type = ql.Option.Call if sign > 0 else ql.Option.Put
    calculator = ql.BlackCalculator(
        ql.PlainVanillaPayoff(option_type, strike), forward, vol * math.sqrt(years), math.exp(-rate * years)
    )
    return {
        "value": calculator.value(),
        "delta": calculator.deltaForward(),
        "gamma": calculator.gammaForward(),
        "vega": calculator.vega(years),
        "theta": calculator.theta(forward, years),
    }


def _assert_close(ours: float, reference: float, *, scale: float, what: str) -> None:
    allowed = REL_TOLERANCE * abs(reference) + ABS_FLOOR * scale
    assert abs(ours - reference) <= allowed, f"{what}: ours {ours!r} vs QuantLib {reference!r}"


def test_black76_matches_quantlib_value_and_greeks() -> None:
    p = _points(SEED)
    n = p["forward"].size
    checked = 0
    for j in range(n):
        ours = black76(
            forward=p["forward"][j],
            strike=p["strike"][j],
            years=p["years"][j],
            vol=p["vol"][j],
            rate=float(p["rate"][j]),
            sign=p["sign"][j],
        )
        ref = _quantlib(
            p["forward"][j], p["strike"][j], p["years"][j], p["vol"][j], p["rate"][j], p["sign"][j]
        )
        f = p["forward"][j]
        label = f"point {j} (F={f:.6g}, K={p['strike'][j]:.6g}, T={p['years'][j]:.4g}, vol={p['vol'][j]:.3g})"
        _assert_close(float(ours.value), ref["value"], scale=f, what=f"value at {label}")
        _assert_close(float(ours.delta), ref["delta"], scale=1.0, what=f"delta at {label}")
        _assert_close(float(ours.gamma), ref["gamma"], scale=1.0 / f, what=f"gamma at {label}")
        _assert_close(float(ours.vega), ref["vega"], scale=f, what=f"vega at {label}")
        _assert_close(float(ours.theta_per_year), ref["theta"], scale=f, what=f"theta at {label}")
        checked += 1
    assert checked == N_POINTS


def test_black76_vectorised_equals_pointwise() -> None:
    """One vectorised call (one rate) gives the same numbers as QuantLib point by point."""
    p = _points(SEED + 1)
    rate = 0.035
    ours = black76(
        forward=p["forward"], strike=p["strike"], years=p["years"], vol=p["vol"], rate=rate, sign=p["sign"]
    )
    for j in range(p["forward"].size):
        ref = _quantlib(p["forward"][j], p["strike"][j], p["years"][j], p["vol"][j], rate, p["sign"][j])
        _assert_close(ours.value[j], ref["value"], scale=p["forward"][j], what=f"value[{j}]")
        _assert_close(ours.delta[j], ref["delta"], scale=1.0, what=f"delta[{j}]")


def test_black76_scenario_grid_matches_quantlib() -> None:
    """The compiled scenario pricer (revalue_scenarios' options x scenarios grid): each option's
    forward scaled by a factor per scenario, at a vol per scenario, against QuantLib point by point
    and against the numpy `black76` on the same grid."""
    p = _points(SEED + 2, n=60)
    rng = np.random.default_rng(SEED + 3)
    n_scenarios = 7
    factor = rng.uniform(0.5, 1.6, size=(60, n_scenarios))
    vol = rng.uniform(0.05, 2.5, size=(60, n_scenarios))
    rate = 0.02
    ours = black76_scenario_values(
        forward=p["forward"],
        factor=factor,
        strike=p["strike"],
        years=p["years"],
        vol=vol,
        rate=rate,
        sign=p["sign"],
    )
    numpy_grid = black76(
        forward=p["forward"][:, None] * factor,
        strike=p["strike"][:, None],
        years=p["years"][:, None],
        vol=vol,
        rate=rate,
        sign=p["sign"][:, None],
    ).value
    np.testing.assert_allclose(ours, numpy_grid, rtol=1e-12, atol=1e-13 * p["forward"].max())
    for j in range(60):
        for s in range(n_scenarios):
            f = p["forward"][j] * factor[j, s]
            ref = _quantlib(f, p["strike"][j], p["years"][j], vol[j, s], rate, p["sign"][j])
            _assert_close(float(ours[j, s]), ref["value"], scale=f, what=f"value[{j}, {s}]")


def _option_table(p: dict[str, np.ndarray], settlement: Settlement, contract_size: float) -> InstrumentTable:
    return InstrumentTable.from_instruments(
        [
            Instrument(
                id=f"OPT-{j}",
                kind=InstrumentKind.OPTION,
                underlying="BTC",
                settlement=settlement,
                contract_size=contract_size,
                expiry_ns=VALUATION_NS + int(p["days"][j]) * NS_PER_DAY,
                strike=float(p["strike"][j]),
                option_type=OptionType.CALL if p["sign"][j] > 0 else OptionType.PUT,
            )
            for j in range(p["forward"].size)
        ]
    )


@pytest.mark.parametrize("settlement", [Settlement.LINEAR, Settlement.INVERSE])
def test_revalue_matches_quantlib_both_settlements(settlement: Settlement) -> None:
    """Linear: value_usd = cs·B. Inverse (Deribit): value_coin = cs·B/F, value_usd = coin × index,
    delta_coin = cs·(ΔB - B/F). The forward differs from the index (F/S in [0.9, 1.2]) so the
    coin-to-USD conversion at the index is visible."""
    rng = np.random.default_rng(SEED + 2)
    spot = 64_000.0
    p = _points(SEED + 3, n=300)
    p["forward"] = spot * rng.uniform(0.9, 1.2, p["forward"].size)
    p["strike"] = p["forward"] * rng.uniform(0.5, 2.0, p["forward"].size)
    rate = 0.045
    contract_size = 0.1 if settlement == Settlement.LINEAR else 1.0
    table = _option_table(p, settlement, contract_size)
    market = MarketState.build(
        table,
        valuation_ns=VALUATION_NS,
        index_prices={"BTC": spot},
        rate=rate,
        implied_vols={table.ids[j]: float(p["vol"][j]) for j in range(table.n_instruments)},
        forward_prices={table.ids[j]: float(p["forward"][j]) for j in range(table.n_instruments)},
    )
    valuation = revalue(table, market)
    np.testing.assert_allclose(valuation.years_to_expiry, p["days"] / 365.0, rtol=1e-11)
    for j in range(table.n_instruments):
        f = float(p["forward"][j])
        years = float(valuation.years_to_expiry[j])
        ref = _quantlib(f, p["strike"][j], years, p["vol"][j], rate, p["sign"][j])
        cs = contract_size
        if settlement == Settlement.LINEAR:
            _assert_close(
                valuation.unit_value_usd[j], cs * ref["value"], scale=cs * f, what=f"value_usd[{j}]"
            )
            _assert_close(
                valuation.option_premium_settlement[j], ref["value"], scale=f, what=f"premium_usd[{j}]"
            )
            assert np.isnan(valuation.value_coin[j])
        else:
            coin = cs * ref["value"] / f
            _assert_close(valuation.value_coin[j], coin, scale=cs, what=f"value_coin[{j}]")
            _assert_close(valuation.unit_value_usd[j], coin * spot, scale=cs * spot, what=f"value_usd[{j}]")
            _assert_close(
                valuation.option_premium_settlement[j], ref["value"] / f, scale=1.0, what=f"mark_coin[{j}]"
            )
            _assert_close(
                valuation.delta_coin[j],
                cs * (ref["delta"] - ref["value"] / f),
                scale=cs,
                what=f"delta_coin[{j}]",
            )
            _assert_close(valuation.vega_coin[j], cs * ref["vega"] / f, scale=cs, what=f"vega_coin[{j}]")
            _assert_close(
                valuation.theta_coin_per_year[j], cs * ref["theta"] / f, scale=cs, what=f"theta_coin[{j}]"
            )
        assert valuation.implied_vol[j] == p["vol"][j]


def test_revalue_default_forward_is_index_grown_at_rate() -> None:
    """With no forward given, F = S·exp(rT); the linear value is then QuantLib's at that F."""
    spot, rate, days = 3_000.0, 0.05, 90
    table = InstrumentTable.from_instruments(
        [
            Instrument(
                id="ETH-C",
                kind=InstrumentKind.OPTION,
                underlying="ETH",
                expiry_ns=VALUATION_NS + days * NS_PER_DAY,
                strike=3_200.0,
                option_type=OptionType.CALL,
            )
        ]
    )
    market = MarketState.build(
        table, valuation_ns=VALUATION_NS, index_prices={"ETH": spot}, rate=rate, implied_vols={"ETH-C": 0.7}
    )
    valuation = revalue(table, market)
    years = days * NS_PER_DAY / NS_PER_YEAR
    forward = spot * math.exp(rate * years)
    ref = _quantlib(forward, 3_200.0, years, 0.7, rate, 1.0)
    assert valuation.forward_usd[0] == pytest.approx(forward, rel=REL_TOLERANCE)
    assert valuation.unit_value_usd[0] == pytest.approx(ref["value"], rel=REL_TOLERANCE)


def test_implied_vol_round_trips_price() -> None:
    """price -> implied vol -> price reproduces the price to REL_TOLERANCE (floor ABS_FLOOR·F); the
    vol itself comes back wherever the price is sensitive to it (vega ≥ 1e-3·F)."""
    p = _points(SEED + 4)
    rate = 0.02
    price = black76(
        forward=p["forward"], strike=p["strike"], years=p["years"], vol=p["vol"], rate=rate, sign=p["sign"]
    )
    vol = implied_vol(
        price=price.value,
        forward=p["forward"],
        strike=p["strike"],
        years=p["years"],
        rate=rate,
        sign=p["sign"],
    )
    again = black76(
        forward=p["forward"], strike=p["strike"], years=p["years"], vol=vol, rate=rate, sign=p["sign"]
    )
    allowed = REL_TOLERANCE * np.abs(price.value) + ABS_FLOOR * p["forward"]
    worst = int(np.argmax(np.abs(again.value - price.value) - allowed))
    assert np.all(np.abs(again.value - price.value) <= allowed), f"point {worst}"
    sensitive = price.vega >= 1e-3 * p["forward"]
    assert sensitive.sum() > N_POINTS // 2
    np.testing.assert_allclose(vol[sensitive], p["vol"][sensitive], rtol=REL_TOLERANCE)


def test_revalue_solves_vol_from_coin_mark() -> None:
    """An inverse option given only a coin mark gets the vol that reprices that mark (B = mark·F)."""
    table = InstrumentTable.from_instruments(
        [
            Instrument(
                id="BTC-29MAR24-70000-C",
                kind=InstrumentKind.OPTION,
                underlying="BTC",
                settlement=Settlement.INVERSE,
                expiry_ns=VALUATION_NS + 88 * NS_PER_DAY,
                strike=70_000.0,
                option_type=OptionType.CALL,
            )
        ]
    )
    market = MarketState.build(
        table,
        valuation_ns=VALUATION_NS,
        index_prices={"BTC": 60_000.0},
        forward_prices={"BTC-29MAR24-70000-C": 61_000.0},
        mark_prices={"BTC-29MAR24-70000-C": 0.0425},
    )
    valuation = revalue(table, market)
    years = float(valuation.years_to_expiry[0])
    ref = _quantlib(61_000.0, 70_000.0, years, float(valuation.implied_vol[0]), 0.0, 1.0)
    assert ref["value"] / 61_000.0 == pytest.approx(0.0425, rel=REL_TOLERANCE)
    assert valuation.value_coin[0] == pytest.approx(0.0425, rel=REL_TOLERANCE)
    assert valuation.unit_value_usd[0] == pytest.approx(0.0425 * 60_000.0, rel=REL_TOLERANCE)


def test_price_below_intrinsic_raises_pricing_error_naming_instrument() -> None:
    """A linear put struck at 70,000 with F = 60,000 is worth at least 10,000·DF; a 9,000 USD mark
    has no implied vol."""
    name = "BTC-29MAR24-70000-P"
    table = InstrumentTable.from_instruments(
        [
            Instrument(id="BTC-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC"),
            Instrument(
                id=name,
                kind=InstrumentKind.OPTION,
                underlying="BTC",
                expiry_ns=VALUATION_NS + 88 * NS_PER_DAY,
                strike=70_000.0,
                option_type=OptionType.PUT,
            ),
        ]
    )
    market = MarketState.build(
        table, valuation_ns=VALUATION_NS, index_prices={"BTC": 60_000.0}, mark_prices={name: 9_000.0}
    )
    with pytest.raises(PricingError) as caught:
        revalue(table, market)
    assert caught.value.field == f"instruments[{name}].mark_price"
    assert name in str(caught.value)


def test_implied_vol_below_intrinsic_names_option() -> None:
    with pytest.raises(PricingError, match=r"instruments\[ETH-C\]\.mark_price"):
        implied_vol(
            price=np.array([10.0, 99.0]),
            forward=np.array([2_000.0, 2_000.0]),
            strike=np.array([2_500.0, 1_900.0]),
            years=np.array([0.5, 0.5]),
            rate=0.0,
            sign=np.array([1.0, 1.0]),
            names=("ETH-OK", "ETH-C"),
        )
