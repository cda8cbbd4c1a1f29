"""One party of the three-party margin check (MPyC). Run by `adapters.mpc.run_parties`:

    python -m crossmargin.adapters.mpc.party PUBLIC.json [SECRETS.json] OUT.json -M3 -I<pid> ...

Party 0 (the venue, holding the account's book) secret-shares the account's quantities, entry
terms and balances; parties 1 and 2 (auditor, custodian) hold shares only (Shamir, threshold 1:
no single party learns anything). All three evaluate `engine.private_margin`'s formulas on the
shares. Opened: whether equity covers maintenance (to all three), and equity, MM and the grid
requirement to party 0 alone (the account owner's side).

Fixed point, by hand on secure integers: secrets enter as round(x · 2**SECRET_BITS), public
coefficients as round(c · 2**PUBLIC_BITS), so every product is exact in the field and nothing
is truncated on the shares; the only error is those two input roundings, |error| <= Σ|c|·2**-41 +
Σ|x|·2**-49 per sum (a 32-bit secret scale was not enough: q/E of an inverse perpetual, ~0.04,
times its coefficient cs·S, ~5e5 USD, lost 6.6e-5 USD). MPyC's `SecFxp` truncates after
each multiplication by a public fraction; in a real three-party run here (MPyC 0.11, -M3 on
localhost) that truncation never completed, the same symptom as lschoe/mpyc#11 (`mpc.mul` on
SecFxp stuck for more than two parties), while comparisons and exact integer products work.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

SECRET_BITS = 40  # secrets (quantities, q·entry term, balances) to 2**-40
PUBLIC_BITS = 48  # public coefficients (prices, haircuts, scenario moves) to 2**-48
FIELD_BITS = 200  # |values| < 2**(40 + 2·48 + 60): USD up to 1e18 with room for comparisons


def _pub(value: float, bits: int = PUBLIC_BITS) -> int:
    scaled: int = round(float(value) * 2**bits)
    return scaled


def _program(public: dict[str, Any], accounts: list[dict[str, Any]] | None, out: Path) -> None:
    from mpyc.runtime import mpc

    secint = mpc.SecInt(FIELD_BITS)
    unit = 2**PUBLIC_BITS  # aligns an (F+G)-scaled term with an (F+2G)-scaled one

    async def main() -> None:
        await mpc.start()
        results = []
        for n in range(public["n_accounts"]):  # one account after another, one session
            results.append(await one_account(None if accounts is None else accounts[n]))
        await mpc.shutdown()
        out.write_text(json.dumps({"party": mpc.pid, "accounts": results}) + "\n", encoding="utf-8")

    async def one_account(secrets: dict[str, Any] | None) -> dict[str, Any]:
        def shared(name: str, size: int) -> list[Any]:
            values = secrets[name] if secrets is not None else [None] * size
            return [mpc.input(secint(None if v is None else _pub(v, SECRET_BITS)), senders=0) for v in values]

        started = time.perf_counter()
        n_instruments = len(public["unit_value_usd"])
        n_assets = len(public["price_usd"])
        q = shared("quantity", n_instruments)  # scale F
        qe = shared("quantity_entry", n_instruments)  # scale F
        b = shared("balances", n_assets)  # scale F
        hu = []  # haircut units, scale F+G
        for k in range(n_assets):  # K assets: progressive tiers by secure clipping
            floors, haircuts = public["tier_floor"][k], public["tier_haircut"][k]
            held = mpc.max(b[k], 0)
            units = _pub(public["liability_weight"][k]) * mpc.min(b[k], 0)
            for t, floor in enumerate(floors):
                if floor < 0:  # padding (+inf floors)
                    break
                above = mpc.max(held - _pub(floor, SECRET_BITS), 0)
                upper = floors[t + 1] if t + 1 < len(floors) and floors[t + 1] >= 0 else None
                piece = above if upper is None else mpc.min(above, _pub(upper - floor, SECRET_BITS))
                units = units + _pub(1.0 - haircuts[t]) * piece
            hu.append(units)
        equity = mpc.sum(  # scale F+2G
            [_pub(public["price_usd"][k]) * hu[k] for k in range(n_assets)]
            + [
                unit
                * (
                    _pub(public["unit_value_usd"][i]) * q[i]
                    + _pub(public["entry_coefficient_usd"][i]) * qe[i]
                )
                for i in range(n_instruments)
            ]
        )
        maintenance = mpc.sum(  # scale F+G
            [_pub(public["maintenance_per_contract_usd"][i]) * mpc.abs(q[i]) for i in range(n_instruments)]
        )
        d_unit, d_coef = public["d_unit_value_usd"], public["d_entry_coefficient_usd"]
        d_value = public["d_value_per_unit_usd"]
        n_scenarios = len(d_unit[0]) if d_unit else 0
        losses = [  # scale F+2G
            -mpc.sum(
                [
                    unit * (_pub(d_unit[i][s]) * q[i] + _pub(d_coef[i][s]) * qe[i])
                    for i in range(n_instruments)
                ]
                + [_pub(d_value[k][s]) * hu[k] for k in range(n_assets)]
            )
            for s in range(n_scenarios)
        ]
        grid = mpc.max([*losses, secint(0)])
        covered = await mpc.output(equity >= unit * maintenance)
        owner = await mpc.output([equity, maintenance, grid], receivers=[0])
        result: dict[str, Any] = {
            "equity_covers_maintenance": bool(covered),
            "seconds": time.perf_counter() - started,
        }
        if mpc.pid == 0:
            wide, narrow = 2 ** (SECRET_BITS + 2 * PUBLIC_BITS), 2 ** (SECRET_BITS + PUBLIC_BITS)
            result |= {
                "equity_usd": int(owner[0]) / wide,
                "maintenance_margin_usd": int(owner[1]) / narrow,
                "grid_requirement_usd": int(owner[2]) / wide,
            }
        return result

    mpc.run(main())


def main() -> None:
    positional = [a for a in sys.argv[1:] if a.endswith(".json")]
    public = json.loads(Path(positional[0]).read_text(encoding="utf-8"))
    accounts = json.loads(Path(positional[1]).read_text(encoding="utf-8")) if len(positional) == 3 else None
    sys.argv = [sys.argv[0], *(a for a in sys.argv[1:] if not a.endswith(".json"))]  # MPyC's own flags
    _program(public, accounts, Path(positional[-1]))


if __name__ == "__main__":
    main()
