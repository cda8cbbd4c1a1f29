"""One party of the three-party margin check (MPyC). Run by `adapters.mpc.run_parties`:

    python -m crossmargin.adapters.mpc.party PUBLIC.json [SECRETS.json] OUT.json -M3 -I<pid> ...

Party 0 (the venue, holding the accounts' book) secret-shares each account's quantities, entry
terms and balances; parties 1 and 2 (auditor, custodian) hold shares only (Shamir, threshold 1:
no single party learns anything). All three evaluate `engine.private_margin`'s formulas on the
shares, every account at once (a leading account axis on each secure array, so each step is
one vectorised protocol for the batch): cross margin, and the portfolio requirement of the
preset the public data was built for (every instrument's scenario P&L is public, so an
account's scenario losses are one public matrix times its secret vector; the requirement is a
secure max over each group, plus floor and add-ons). Opened: whether equity covers cross
maintenance and portfolio maintenance (to all three); equity, cross MM, grid, portfolio IM and
MM to party 0 alone (the owner's side).

Fixed point on MPyC secure integers (one 215-bit prime field): secrets enter as
round(x · 2**SECRET_BITS), public coefficients as round(c · 2**PUBLIC_BITS), so a secret × public
product is exact, in USD · 2**-88. The only rescalings (q² of size-scaled schedules, the depeg
move and the maintenance fraction times a secret) use MPyC's probabilistic truncation (error
≤ 2**-88 USD). The only other errors are the two input roundings, ≤ Σ|c|·2**-41 + Σ|x|·2**-49 per
sum, except that a q·entry term with a large coefficient (inverse contracts: q/E ~ 0.05 against
cs·S ~ 1e6 USD) is carried with up to 16 more bits and its coefficients with as many fewer
(`entry_shift_bits`): ≤ |c|·2**-57 + |x|·2**-33 there. Comparisons are told the bit length of
what they compare (`np_sgn(l=)`): quantities and balances below 2**31 units, USD amounts below
2**47. MPyC's `SecFxp` (truncation after every
product) never completed a multiplication in a three-party run here (MPyC 0.11; the symptom of
lschoe/mpyc#11), hence this explicit scaling.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from crossmargin.adapters.mpc.fixed_point import (
    ENTRY_SHIFT_MAX_BITS,
    PUBLIC_BITS,
    QUANTITY_LIMIT_BITS,
    SECRET_BITS,
    TRUNCATE_BITS,
    USD_BITS,
    USD_LIMIT_BITS,
)


def _ints(values: Any, bits: Any) -> np.ndarray[Any, Any]:
    """Public floats -> exact Python ints round(x · 2**bits), an object array; `bits` an int or,
    per row, an int array (one per entry of the first axis)."""
    array = np.asarray(values, dtype=np.float64)
    rows = np.asarray(bits, dtype=np.int64)
    if rows.ndim:
        rows = rows.reshape(-1, *([1] * (array.ndim - 1)))
    scale = np.broadcast_to(rows, array.shape).reshape(-1)
    flat = [round(float(v) * 2.0 ** int(b)) for v, b in zip(array.reshape(-1), scale, strict=True)]
    return np.array(flat, dtype=object).reshape(array.shape)


def entry_shift_bits(value_coef: np.ndarray[Any, Any], n_instruments: int) -> np.ndarray[Any, Any]:
    """Extra bits for each q·entry term (and as many fewer for its coefficients), so that their
    product keeps the USD scale 2**-88: an inverse contract's q/E is small (~0.05) and its
    coefficient large (cs·S ~ 1e6 USD), so 2**-40 on q/E alone would cost up to 4e-7 USD. Up to
    16 bits, from the coefficient's size: public, so every party derives the same."""
    coef = np.abs(np.asarray(value_coef, dtype=np.float64)[n_instruments : 2 * n_instruments])
    magnitude = np.floor(np.log2(np.maximum(coef, 1.0))).astype(np.int64)
    shift: np.ndarray[Any, Any] = np.clip(magnitude - 3, 0, ENTRY_SHIFT_MAX_BITS)
    return shift


def _program(public: dict[str, Any], accounts: list[dict[str, Any]] | None, out: Path) -> None:
    from mpyc import finfields
    from mpyc.runtime import mpc

    prime_bits = TRUNCATE_BITS + mpc.options.sec_param + 2
    secint = mpc.SecInt(USD_BITS + USD_LIMIT_BITS, p=finfields.find_prime_root(prime_bits)[0])
    l_units, l_usd = SECRET_BITS + QUANTITY_LIMIT_BITS + 1, USD_BITS + USD_LIMIT_BITS + 1
    plan = _Plan(public)

    def relu(a: Any, bits: int) -> Any:
        return a - mpc.np_sgn(a, l=bits, LT=True) * a

    def row_max(a: Any) -> Any:
        """(R, n) -> (R,): a tree of vectorised comparisons, log2(n) rounds."""
        while a.shape[1] > 1:
            h = a.shape[1] // 2
            head = a[:, :h] + relu(a[:, h : 2 * h] - a[:, :h], l_usd)
            a = mpc.np_hstack((head, a[:, 2 * h :])) if a.shape[1] % 2 else head
        return a[:, 0]

    async def main() -> None:
        await mpc.start()
        started = time.perf_counter()
        results = await all_accounts(public["n_accounts"], accounts)
        seconds = (time.perf_counter() - started) / max(len(results), 1)
        await mpc.shutdown()
        for result in results:
            result["seconds"] = seconds
        out.write_text(json.dumps({"party": mpc.pid, "accounts": results}) + "\n", encoding="utf-8")

    async def all_accounts(n: int, secrets: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        """Every account at once: a leading account axis on every secure array, so each step is
        one vectorised protocol for the whole batch (the comparisons' count is per account)."""
        n_i, n_k = plan.n_instruments, plan.n_assets
        width = 2 * n_i + n_k
        if secrets is None:
            values: list[int | None] = [None] * (n * width)
        else:
            raw = [v for a in secrets for v in (*a["quantity"], *a["quantity_entry"], *a["balances"])]
            bits = np.tile(np.concatenate([np.zeros(n_i), plan.entry_shift, np.zeros(n_k)]), n) + SECRET_BITS
            values = [round(float(v) * 2.0 ** int(b)) for v, b in zip(raw, bits, strict=True)]
        shared = mpc.np_fromlist(mpc.input([secint(v) for v in values], senders=0)).reshape(n, width)
        q, qe, b = shared[:, :n_i], shared[:, n_i : 2 * n_i], shared[:, 2 * n_i :]
        held = relu(b, l_units)
        above = relu(held @ plan.spread - plan.floor, l_units)  # (N, K·T) per tier slot
        pieces = plan.finite * (above - plan.bounded * relu(above - plan.width, l_units))
        z = mpc.np_hstack((q, qe, pieces, b - held))  # scale F
        long = relu(q, l_units)
        size, short = 2 * long - q, long - q
        equity = z @ plan.value
        # Cross MM: convex tier lines (max), q² terms, option rule per side.
        cross = size @ plan.single_slope + long @ plan.mm_long + short @ plan.mm_short - plan.single_deduction
        if plan.multi is not None and plan.multi_slope is not None:
            m, tiers = plan.multi_slope.shape
            lines = (size @ plan.multi).reshape(n, m, 1) * plan.multi_slope - plan.multi_deduction
            cross = cross + mpc.np_sum(row_max(lines.reshape(n * m, tiers)).reshape(n, m), axis=1)
        if plan.square is not None:
            cross = cross + mpc.np_trunc((q * q) @ plan.square, SECRET_BITS, l=TRUNCATE_BITS)
        # Portfolio: group maxima of the scenario losses, floor, add-ons, provisions.
        losses = (z @ plan.grid_coef - plan.grid_offset).reshape(n * plan.n_groups, -1)
        grid = mpc.np_sum(relu(row_max(losses), l_usd).reshape(n, plan.n_groups), axis=1)
        addons = short @ plan.short_option
        if plan.depeg_coef is not None:
            rows = z @ plan.depeg_coef - plan.depeg_offset  # (N, D)
            capped = rows - relu(rows - grid.reshape(n, 1), l_usd)  # min(loss/ρ, grid)
            inner = relu(row_max(capped), l_usd)
            addons = addons + mpc.np_trunc(plan.depeg_rate * inner, PUBLIC_BITS, l=TRUNCATE_BITS)
        floor = size @ plan.floor_per_contract
        if plan.forms is not None:
            magnitude = mpc.np_absolute(q @ plan.forms, l=l_usd)
            floor = floor + magnitude @ plan.form_floor
            addons = addons + magnitude @ plan.form_addon
        clipped = relu(
            mpc.np_stack((q @ plan.funding, floor - grid)), l_usd
        )  # max(0, funding); max(grid, floor) − grid
        provisions = clipped[0] + size @ plan.fee
        active = mpc.np_sgn(-mpc.np_sum(size, axis=1), l=l_units, LT=True)
        risk = active * (grid + clipped[1] + addons)
        initial = risk + active * provisions
        fraction_of_risk = mpc.np_trunc(plan.fraction * risk, PUBLIC_BITS, l=TRUNCATE_BITS)
        maintenance = fraction_of_risk + active * provisions
        short_of = mpc.np_sgn(mpc.np_stack((equity - cross, equity - maintenance)), l=l_usd, LT=True)
        opened = await mpc.output(short_of)
        owner = await mpc.output(
            mpc.np_stack((equity, cross, active * grid, initial, maintenance)), receivers=[0]
        )
        results: list[dict[str, Any]] = []
        for a in range(n):
            result: dict[str, Any] = {
                "equity_covers_maintenance": not bool(int(opened[0, a])),
                "equity_covers_portfolio_maintenance": not bool(int(opened[1, a])),
            }
            if mpc.pid == 0:
                usd = [int(owner[f, a]) / 2**USD_BITS for f in range(len(OWNER_FIELDS))]
                result |= dict(zip(OWNER_FIELDS, usd, strict=True))
            results.append(result)
        return results

    mpc.run(main())


OWNER_FIELDS = (
    "equity_usd",
    "maintenance_margin_usd",
    "grid_requirement_usd",
    "portfolio_initial_margin_usd",
    "portfolio_maintenance_margin_usd",
)


class _Plan:
    """The public data as exact integers laid out for the secure arrays: tier slots, the convex
    schedules that need a max, the scenario groups padded to one length (a group's first row
    repeated: the max is unchanged), the depeg rows apart."""

    def __init__(self, public: dict[str, Any]) -> None:
        f, g, w = SECRET_BITS, PUBLIC_BITS, USD_BITS
        slope = np.array(public["mm_slope_usd"])
        deduction = np.array(public["mm_deduction_usd"])
        self.n_instruments = slope.shape[0]
        floors = np.array(public["tier_floor"])  # −1 = none
        self.n_assets, per_asset = floors.shape
        upper = np.hstack([floors[:, 1:], -np.ones((self.n_assets, 1))])
        finite, bounded = floors >= 0, (floors >= 0) & (upper >= 0)
        self.spread = np.kron(np.eye(self.n_assets, dtype=int), np.ones((1, per_asset), dtype=int)).astype(
            object
        )
        self.floor = _ints(np.where(finite, floors, 0.0).reshape(-1), f)
        self.width = _ints(np.where(bounded, upper - floors, 0.0).reshape(-1), f)
        self.finite = finite.reshape(-1).astype(int).astype(object)
        self.bounded = bounded.reshape(-1).astype(int).astype(object)
        self.entry_shift = entry_shift_bits(np.array(public["value_coef_usd"]), self.n_instruments)
        z_bits = np.full(len(public["value_coef_usd"]), g)  # per column of z: G, less the shift
        z_bits[self.n_instruments : 2 * self.n_instruments] -= self.entry_shift
        self.value = _ints(public["value_coef_usd"], z_bits)
        distinct = [
            sorted({(s, d) for s, d in zip(slope[i], deduction[i], strict=True)})
            for i in range(self.n_instruments)
        ]
        multi = [i for i in range(self.n_instruments) if len(distinct[i]) > 1]
        single = np.array([len(distinct[i]) == 1 for i in range(self.n_instruments)])
        self.single_slope = _ints(np.where(single, slope[:, 0], 0.0), g)
        self.single_deduction = sum(int(v) for v in _ints(np.where(single, deduction[:, 0], 0.0), w))
        self.multi, self.multi_slope, self.multi_deduction = None, None, None
        if multi:
            width = max(len(distinct[i]) for i in multi)
            rows = [distinct[i] + [distinct[i][0]] * (width - len(distinct[i])) for i in multi]
            self.multi = np.eye(self.n_instruments, dtype=int)[:, multi].astype(object)
            self.multi_slope = _ints([[s for s, _ in r] for r in rows], g)
            self.multi_deduction = _ints([[d for _, d in r] for r in rows], w)
        square = np.array(public["mm_square_usd"])
        self.square = _ints(square, g) if np.any(square) else None
        self.mm_long, self.mm_short = _ints(public["mm_long_usd"], g), _ints(public["mm_short_usd"], g)
        coef, offset = np.array(public["loss_coef_usd"]), np.array(public["loss_offset_usd"])
        group = np.array(public["group"])
        ids = [int(v) for v in np.unique(group[group >= 0])]
        members = [np.flatnonzero(group == k) for k in ids]
        longest = max(len(m) for m in members)
        order = np.concatenate([np.concatenate([m, np.repeat(m[:1], longest - len(m))]) for m in members])
        self.n_groups = len(ids)
        self.grid_coef, self.grid_offset = _ints(coef[order].T, z_bits), _ints(offset[order], w)
        depeg = np.flatnonzero(group < 0)
        self.depeg_coef = _ints(coef[depeg].T, z_bits) if depeg.size else None
        self.depeg_offset = _ints(offset[depeg], w)
        self.depeg_rate = int(_ints(public["depeg_rate"][0], g))
        forms, kind = np.array(public["abs_coef_usd"]), np.array(public["abs_kind"])
        self.forms = _ints(forms.T, g) if forms.size else None
        self.form_floor = (kind == 0).astype(int).astype(object)
        self.form_addon = (kind == 1).astype(int).astype(object)
        self.floor_per_contract = _ints(public["floor_per_contract_usd"], g)
        self.fee = _ints(public["fee_per_contract_usd"], g)
        self.short_option = _ints(public["short_option_usd"], g)
        self.funding = _ints(public["funding_usd"], g)
        self.fraction = int(_ints(public["maintenance_fraction"][0], g))


def main() -> None:
    positional = [a for a in sys.argv[1:] if a.endswith(".json")]
    public = json.loads(Path(positional[0]).read_text(encoding="utf-8"))
    accounts = json.loads(Path(positional[1]).read_text(encoding="utf-8")) if len(positional) == 3 else None
    sys.argv = [sys.argv[0], *(a for a in sys.argv[1:] if not a.endswith(".json"))]  # MPyC's own flags
    _program(public, accounts, Path(positional[-1]))


if __name__ == "__main__":
    main()
