"""Revaluation of every instrument at once: Black-76 options, futures, perpetuals, spot.

All arrays are per instrument, shape (I,), per ONE contract. Float64: risk math.

Price convention: the whole complex of an underlying (index S, futures marks M, option forwards F)
moves proportionally with the index, so greeks are sensitivities to S with M/S and F/S held fixed
(exact for scenario shocks, which scale the complex). Options use Black-76 on the forward
(Black 1976, "The pricing of commodity contracts"):

    d1 = [ln(F/K) + σ²T/2] / (σ√T),  d2 = d1 - σ√T,  DF = exp(-rT),  ω = +1 call / -1 put
    B  = DF·ω·[F·N(ωd1) - K·N(ωd2)]          ΔB = DF·ω·N(ωd1)        ΓB = DF·φ(d1)/(F σ√T)
    νB = DF·F·φ(d1)·√T (per 1.00 of vol)      θB = r·B - DF·F·φ(d1)·σ/(2√T) (per year, F fixed)

A linear option is worth contract_size·B USD. An inverse (coin-settled, Deribit) option is worth
contract_size·B/F coin — Deribit's mark convention, undiscounted when r = 0 — i.e. that coin
amount times S in USD. Coin greeks (inverse options) are premium-adjusted:
delta_coin = cs·(ΔB - B/F), the coin hedge ratio of the coin-denominated value (the value is in
coin, so a move of F also moves the coin the premium is counted in). This is not the `delta`
Deribit's ticker publishes: in the shared option chains (options_deribit_*.csv) that is the plain
Black-76 ΔB = N(d1) (calls), N(d1) − 1 (puts); compare with ΔB, not delta_coin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from crossmargin.core.checks import check_finite
from crossmargin.core.instruments import InstrumentKind, InstrumentTable
from crossmargin.core.jit import kernel, prange
from crossmargin.core.market import MarketState
from crossmargin.errors import InputError, PricingError

FloatArray = npt.NDArray[np.float64]

INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
IMPLIED_VOL_LOW = 1e-4
IMPLIED_VOL_HIGH = 20.0
# Chandrupatla's bracketing root finder (scipy.optimize.elementwise.find_root) to float64
# resolution in vol: at most ~35 iterations where bisection needed 100 (measured on 20,000 random
# options: 2.1x faster, the same 3e-9 worst relative error, which the price's own rounding sets).
IMPLIED_VOL_MAX_ITERATIONS = 200
IMPLIED_VOL_TOLERANCES = {
    "xatol": 1e-300,
    "xrtol": 4.0 * float(np.finfo(np.float64).eps),
    "fatol": 1e-300,
    "frtol": 0.0,
}


@dataclass(frozen=True, slots=True)
class Black76:
    """Black-76 value and greeks per unit of underlying, USD (see module docstring)."""

    value: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta_per_year: FloatArray


@kernel(nogil=True)
def _normal_cdf_kernel(x: np.ndarray, out: np.ndarray) -> None:
    sqrt_half = np.sqrt(0.5)
    for n in range(x.shape[0]):
        out[n] = 0.5 * math.erfc(-x[n] * sqrt_half)  # the scenario kernel's N, term for term


def normal_cdf(x: FloatArray) -> FloatArray:
    """N(x) = erfc(-x/√2)/2, the standard normal CDF, accurate in both tails (erfc never forms
    1 - small; https://en.cppreference.com/w/c/numeric/math/erfc), any shape: the N of
    `black76_scenario_values`, term for term, so an option that does not move reprices to its
    value up to the last ulps of log and exp (scenario revaluation then takes its value as it
    is: core.scenarios). Within 1e-13 relative of scipy.special.ndtr, which it replaces because
    importing scipy costs ~0.3 s of every command's start-up (core.position_matrix); both lose
    ~2x²·eps in the left tail, where x/√2 rounds (against a 200-bit mpmath reference over
    [-37.5, 8.5]: worst 1,468 ulp here, 1,923 for ndtr; tests/core/test_pricing.py). A kernel
    (core.jit): interpreted for a few options, compiled for a chain."""
    flat = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    out = np.empty_like(flat)
    _normal_cdf_kernel.for_work(flat.size)(flat, out)  # interpreted: ~0.5 us a value (core.jit)
    return out.reshape(np.shape(x))


def _black76_value(
    forward: FloatArray,
    strike: FloatArray,
    discount: FloatArray,
    sign: FloatArray,
    d1: FloatArray,
    std_dev: FloatArray,
) -> FloatArray:
    n1, n2 = normal_cdf(sign * d1), normal_cdf(sign * (d1 - std_dev))
    value: FloatArray = discount * sign * (forward * n1 - strike * n2)
    return value


def black76_value(
    *,
    forward: FloatArray,
    strike: FloatArray,
    years: FloatArray,
    vol: FloatArray,
    rate: float,
    sign: FloatArray,
) -> FloatArray:
    """Black-76 price only (what scenario revaluation needs; the greeks cost as much again)."""
    _, std_dev, d1 = _d1(forward, strike, years, vol)
    return _black76_value(forward, strike, np.exp(-rate * years), sign, d1, std_dev)


@kernel(parallel=True, nogil=True)
def _black76_scenario_values(
    forward: np.ndarray,
    factor: np.ndarray,
    strike: np.ndarray,
    years: np.ndarray,
    vol: np.ndarray,
    rate: float,
    sign: np.ndarray,
    out: np.ndarray,
) -> None:
    sqrt_half = np.sqrt(0.5)
    for n in prange(out.shape[0]):
        sqrt_t = np.sqrt(years[n])
        discount = np.exp(-rate * years[n])
        w = sign[n]
        for s in range(out.shape[1]):
            f = forward[n] * factor[n, s]
            std_dev = vol[n, s] * sqrt_t
            d1 = (np.log(f / strike[n]) + 0.5 * std_dev * std_dev) / std_dev
            # N(x) = erfc(-x/√2)/2, accurate in both tails (as scipy's ndtr)
            n1 = 0.5 * math.erfc(-w * d1 * sqrt_half)
            n2 = 0.5 * math.erfc(-w * (d1 - std_dev) * sqrt_half)
            out[n, s] = discount * w * (f * n1 - strike[n] * n2)


def black76_scenario_values(
    *,
    forward: FloatArray,
    factor: FloatArray,
    strike: FloatArray,
    years: FloatArray,
    vol: FloatArray,
    rate: float,
    sign: FloatArray,
) -> FloatArray:
    """Black-76 prices (n, S) of n options in S scenarios: forward·factor[:, s] at vol[:, s]
    (forward, strike, years, sign: (n,); factor, vol: (n, S)). The formula of `black76_value`,
    compiled and parallel: scenario revaluation prices 54 k of them per tick on the bench book
    (1.5 ms in numpy with scipy's ndtr, most of it the two N passes)."""
    out = np.empty(factor.shape)
    _black76_scenario_values.for_work(out.size)(  # interpreted: ~1.1 us a price (core.jit)
        np.ascontiguousarray(forward, dtype=np.float64),
        np.ascontiguousarray(factor, dtype=np.float64),
        np.ascontiguousarray(strike, dtype=np.float64),
        np.ascontiguousarray(years, dtype=np.float64),
        np.ascontiguousarray(vol, dtype=np.float64),
        float(rate),
        np.ascontiguousarray(sign, dtype=np.float64),
        out,
    )
    return out


def _d1(
    forward: FloatArray, strike: FloatArray, years: FloatArray, vol: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(sqrt(T), σ·sqrt(T), d1 = (ln(F/K) + σ²T/2) / (σ·sqrt(T)))."""
    sqrt_t = np.sqrt(years)
    std_dev = vol * sqrt_t
    d1 = (np.log(forward / strike) + 0.5 * std_dev * std_dev) / std_dev
    return sqrt_t, std_dev, d1


def black76(
    *,
    forward: FloatArray,
    strike: FloatArray,
    years: FloatArray,
    vol: FloatArray,
    rate: float,
    sign: FloatArray,
) -> Black76:
    """Black-76 price and greeks, vectorised. sign = +1 call, -1 put. years > 0, vol > 0."""
    forward, strike, years, vol, sign = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (forward, strike, years, vol, sign))
    )
    sqrt_t, std_dev, d1 = _d1(forward, strike, years, vol)
    discount = np.exp(-rate * years)
    density = INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
    value = _black76_value(forward, strike, discount, sign, d1, std_dev)
    delta = discount * sign * normal_cdf(sign * d1)
    gamma = discount * density / (forward * std_dev)
    vega = discount * forward * density * sqrt_t
    theta = rate * value - discount * forward * density * vol / (2.0 * sqrt_t)
    return Black76(value=value, delta=delta, gamma=gamma, vega=vega, theta_per_year=theta)


def implied_vol(
    *,
    price: FloatArray,
    forward: FloatArray,
    strike: FloatArray,
    years: FloatArray,
    rate: float,
    sign: FloatArray,
    names: tuple[str, ...] | None = None,
) -> FloatArray:
    """Black-76 implied vol from a USD price per unit, by a vectorised bracketing root search on
    [IMPLIED_VOL_LOW, IMPLIED_VOL_HIGH] (Chandrupatla 1997, `scipy.optimize.elementwise.find_root`:
    robust in the wings where Newton stalls; https://docs.scipy.org/doc/scipy/reference/generated/
    scipy.optimize.elementwise.find_root.html). A price at or below the value at IMPLIED_VOL_LOW
    (deep in the money, no time value left) gives IMPLIED_VOL_LOW. Raises PricingError naming the
    first option whose price lies outside the no-arbitrage bounds
    [DF·intrinsic, DF·F (call) or DF·K (put)]."""
    price, forward, strike, years, sign = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (price, forward, strike, years, sign))
    )
    discount = np.exp(-rate * years)
    intrinsic = discount * np.maximum(sign * (forward - strike), 0.0)
    upper = discount * np.where(sign > 0, forward, strike)
    low_price = black76(
        forward=forward,
        strike=strike,
        years=years,
        vol=np.full_like(price, IMPLIED_VOL_LOW),
        rate=rate,
        sign=sign,
    ).value
    bad = (price < intrinsic - 1e-12 * upper) | (price >= upper)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        name = names[i] if names else f"[{i}]"
        raise PricingError(
            f"instruments[{name}].mark_price",
            f"USD price {price[i]:.10g} is outside the no-arbitrage bounds "
            f"[{intrinsic[i]:.10g}, {upper[i]:.10g}); no implied vol exists",
        )
    solvable = price > low_price

    def gap(vol: FloatArray, *args: FloatArray) -> FloatArray:
        f, k, t, s, p = args
        value: FloatArray = black76(forward=f, strike=k, years=t, vol=vol, rate=rate, sign=s).value - p
        return value

    rows = np.flatnonzero(solvable)
    vol: FloatArray = np.full_like(price, IMPLIED_VOL_LOW)
    if rows.size:
        # scipy.optimize costs ~0.45 s to import: paid only when a mark must be inverted.
        from scipy.optimize import elementwise

        found = elementwise.find_root(
            gap,
            (np.full(rows.size, IMPLIED_VOL_LOW), np.full(rows.size, IMPLIED_VOL_HIGH)),
            args=(forward[rows], strike[rows], years[rows], sign[rows], price[rows]),
            tolerances=IMPLIED_VOL_TOLERANCES,
            maxiter=IMPLIED_VOL_MAX_ITERATIONS,
        )
        failed = ~found.success
        if np.any(failed):
            i = int(rows[np.flatnonzero(failed)[0]])
            name = names[i] if names else f"[{i}]"
            raise PricingError(
                f"instruments[{name}].mark_price",
                f"no implied vol in [{IMPLIED_VOL_LOW}, {IMPLIED_VOL_HIGH}] "
                f"reproduces USD price {price[i]:.10g}",
            )
        vol[rows] = found.x
    return vol


@dataclass(frozen=True, slots=True)
class InstrumentValuation:
    """Every instrument revalued once, per contract, shapes (I,).

    A position of q contracts with entry price E is worth, in USD,
        value_usd = q · (unit_value_usd + entry_coefficient_usd · entry_term(E))
    with entry_term(E) = E for linear and 1/E for inverse instruments (see `entry_term`):
        spot           unit = cs·M          coefficient = 0          (full market value)
        linear future  unit = cs·M          coefficient = -cs        (PnL = q·cs·(M - E))
        inverse future unit = -cs·S/M       coefficient = cs·S       (PnL_coin·S = q·cs·(1/E - 1/M)·S)
        option         unit = premium_usd   coefficient = 0          (mark value; premium was paid)
    notional_usd and size_units are per contract: |q|·notional_usd is the USD notional, |q|·size_units
    the size in units of the underlying (what Deribit's rate_per_unit multiplies).
    """

    spot_usd: FloatArray
    mark_price: FloatArray
    forward_usd: FloatArray
    years_to_expiry: FloatArray
    implied_vol: FloatArray
    unit_value_usd: FloatArray
    entry_coefficient_usd: FloatArray
    option_premium_settlement: FloatArray
    notional_usd: FloatArray
    size_units: FloatArray
    delta_usd: FloatArray
    gamma_usd: FloatArray
    vega_usd: FloatArray
    theta_usd_per_year: FloatArray
    value_coin: FloatArray
    delta_coin: FloatArray
    gamma_coin: FloatArray
    vega_coin: FloatArray
    theta_coin_per_year: FloatArray
    # Kernel inputs derived from this valuation and kept with it (`margin.requirements.
    # priced_records`: the instrument records per table and option parameters, each entry with
    # the table it was built for); a fresh memo for every valuation, dataclasses.replace included.
    memo: dict[object, Any] = field(default_factory=dict, init=False, compare=False, repr=False)


def entry_term(entry_price: FloatArray, reciprocal: npt.NDArray[np.bool_]) -> FloatArray:
    """1/E for inverse delta-one instruments (E > 0 there), E elsewhere (options carry a zero
    coefficient, so their entry premium, possibly 0, never enters the value)."""
    safe = np.where(reciprocal, entry_price, 1.0)
    term: FloatArray = np.where(reciprocal, 1.0 / safe, entry_price)
    return term


def revalue(instruments: InstrumentTable, market: MarketState) -> InstrumentValuation:
    """Revalue every instrument once. Fills defaults: perpetual mark = index, future mark =
    S·exp(rT), option forward = S·exp(rT); an option with only a mark gets its implied vol
    solved from it, with only a vol gets its Black-76 price; with both, the venue's mark is the
    value and the vol drives greeks."""
    n = instruments.n_instruments
    kind = instruments.kind
    inverse = instruments.is_inverse
    option = instruments.is_option
    cs = instruments.contract_size
    spot = market.index_price_usd[instruments.underlying_index]
    years = market.years_to_expiry(instruments)
    carry = np.where(np.isfinite(years), np.exp(market.rate * np.where(np.isfinite(years), years, 0.0)), 1.0)

    mark = np.where(np.isnan(market.mark_price), spot * carry, market.mark_price)
    delta1 = ~option
    if np.any(delta1 & (mark <= 0.0)):
        i = int(np.flatnonzero(delta1 & (mark <= 0.0))[0])
        raise InputError(f"instruments[{instruments.ids[i]}].mark_price", "must be > 0")
    forward = np.where(np.isnan(market.forward_price_usd), spot * carry, market.forward_price_usd)

    vol = market.implied_vol.copy()
    premium_settlement = np.zeros(n)  # mark in settlement units: USD (linear) or coin (inverse)
    option_idx = np.flatnonzero(option)
    if option_idx.size:
        o_mark = market.mark_price[option_idx]
        o_vol = vol[option_idx]
        neither = np.isnan(o_mark) & np.isnan(o_vol)
        if np.any(neither):
            name = instruments.ids[option_idx[np.flatnonzero(neither)[0]]]
            raise InputError(f"instruments[{name}]", "an option needs mark_price or implied_vol")
        o_forward = forward[option_idx]
        o_strike = instruments.strike[option_idx]
        o_years = years[option_idx]
        o_sign = instruments.option_sign[option_idx].astype(np.float64)
        o_inverse = inverse[option_idx]
        # The mark per unit of underlying, in USD: coin marks are B/F (Deribit), so B = mark·F.
        mark_usd_unit = np.where(o_inverse, o_mark * o_forward, o_mark)
        solve = np.flatnonzero(np.isnan(o_vol))
        if solve.size:
            o_vol[solve] = implied_vol(
                price=mark_usd_unit[solve],
                forward=o_forward[solve],
                strike=o_strike[solve],
                years=o_years[solve],
                rate=market.rate,
                sign=o_sign[solve],
                names=tuple(instruments.ids[j] for j in option_idx[solve]),
            )
        vol[option_idx] = o_vol
        model = black76(
            forward=o_forward,
            strike=o_strike,
            years=o_years,
            vol=o_vol,
            rate=market.rate,
            sign=o_sign,
        )
        # A given mark is kept exactly in its own units (no coin -> USD -> coin round trip).
        model_settlement = np.where(o_inverse, model.value / o_forward, model.value)
        premium_settlement[option_idx] = np.where(np.isnan(o_mark), model_settlement, o_mark)

    unit_value = np.zeros(n)
    coefficient = np.zeros(n)
    notional = np.zeros(n)
    size_units = np.zeros(n)
    delta = np.zeros(n)
    gamma = np.zeros(n)
    vega = np.zeros(n)
    theta = np.zeros(n)
    value_coin = np.full(n, np.nan)
    delta_coin = np.full(n, np.nan)
    gamma_coin = np.full(n, np.nan)
    vega_coin = np.full(n, np.nan)
    theta_coin = np.full(n, np.nan)

    linear_d1 = delta1 & ~inverse
    unit_value[linear_d1] = (cs * mark)[linear_d1]
    coefficient[linear_d1 & (kind != InstrumentKind.SPOT)] = -cs[linear_d1 & (kind != InstrumentKind.SPOT)]
    notional[linear_d1] = (cs * mark)[linear_d1]
    size_units[linear_d1] = cs[linear_d1]
    delta[linear_d1] = (cs * mark / spot)[linear_d1]

    inverse_d1 = delta1 & inverse
    coefficient[inverse_d1] = (cs * spot)[inverse_d1]
    # unit = -coefficient · (1/M), the very product coefficient · entry_term(E) forms at E = M, so a
    # position entered at the mark is worth exactly 0 (-cs·S/M rounds differently: 1e-16 per
    # contract, enough to turn a zero-equity account's margin ratio into 4e14).
    unit_value[inverse_d1] = -(coefficient * (1.0 / np.where(inverse_d1, mark, 1.0)))[inverse_d1]
    notional[inverse_d1] = (cs * spot / mark)[inverse_d1]
    size_units[inverse_d1] = (cs / mark)[inverse_d1]
    delta[inverse_d1] = (cs / mark)[inverse_d1]  # coin exposure of the USD face; PnL coin adds its own
    value_coin[inverse_d1] = (-cs / mark)[inverse_d1]
    delta_coin[inverse_d1] = (cs / mark)[inverse_d1]
    gamma_coin[inverse_d1] = 0.0
    vega_coin[inverse_d1] = 0.0
    theta_coin[inverse_d1] = 0.0

    if option_idx.size:
        o_cs = cs[option_idx]
        o_spot = spot[option_idx]
        o_inverse = inverse[option_idx]
        ratio = o_forward / o_spot  # F/S, held fixed as the complex moves
        price_usd_unit = np.where(
            o_inverse, premium_settlement[option_idx] * o_forward, premium_settlement[option_idx]
        )
        # Inverse: value_usd = cs·(B/F)·S; linear: cs·B (module docstring).
        to_usd = np.where(o_inverse, 1.0 / ratio, 1.0)
        unit_value[option_idx] = o_cs * price_usd_unit * to_usd
        notional[option_idx] = o_cs * o_spot
        size_units[option_idx] = o_cs
        delta[option_idx] = o_cs * model.delta * np.where(o_inverse, 1.0, ratio)
        gamma[option_idx] = o_cs * model.gamma * np.where(o_inverse, ratio, ratio * ratio)
        vega[option_idx] = o_cs * model.vega * to_usd
        theta[option_idx] = o_cs * model.theta_per_year * to_usd
        inv = option_idx[o_inverse]
        if inv.size:
            f = o_forward[o_inverse]
            b_over_f = price_usd_unit[o_inverse] / f
            c = o_cs[o_inverse]
            adjusted = model.delta[o_inverse] - b_over_f
            value_coin[inv] = c * b_over_f
            delta_coin[inv] = c * adjusted
            gamma_coin[inv] = c * (model.gamma[o_inverse] - adjusted / f)
            vega_coin[inv] = c * model.vega[o_inverse] / f
            theta_coin[inv] = c * model.theta_per_year[o_inverse] / f

    check_finite(unit_value, "valuation.unit_value_usd")
    return InstrumentValuation(
        spot_usd=spot,
        mark_price=np.where(option, np.nan, mark),
        forward_usd=forward,
        years_to_expiry=years,
        implied_vol=vol,
        unit_value_usd=unit_value,
        entry_coefficient_usd=coefficient,
        option_premium_settlement=premium_settlement,
        notional_usd=notional,
        size_units=size_units,
        delta_usd=delta,
        gamma_usd=gamma,
        vega_usd=vega,
        theta_usd_per_year=theta,
        value_coin=value_coin,
        delta_coin=delta_coin,
        gamma_coin=gamma_coin,
        vega_coin=vega_coin,
        theta_coin_per_year=theta_coin,
    )
