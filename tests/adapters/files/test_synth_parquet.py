"""Synthetic books as Parquet: written whole, read back whole or by account range."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crossmargin.adapters.files.synth_parquet import read_synth, write_synth
from crossmargin.core.synthetic import SynthSpec, synth_book


def test_synth_parquet_round_trip_and_ranges(tmp_path: Path) -> None:
    spec = SynthSpec(n_accounts=5_000, seed=2)
    out = write_synth(spec, tmp_path / "book")
    assert sorted(p.name for p in out.iterdir()) == ["balances.parquet", "positions.parquet", "synth.json"]
    book, expected = read_synth(out), synth_book(spec)
    assert book.account_ids == expected.account_ids
    assert np.array_equal(book.positions.data, expected.positions.data)
    assert np.array_equal(book.balances, expected.balances)
    part = read_synth(out, first_account=1_234, n_accounts=100)
    assert part.account_ids == expected.account_ids[1_234:1_334]
    assert np.array_equal(part.positions.data, expected.select(np.arange(1_234, 1_334)).positions.data)
