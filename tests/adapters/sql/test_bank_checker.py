"""Jepsen's bank workload on PostgreSQL: parallel clients transfer and withdraw between accounts
while readers take balance cuts, from the venue and straight from the database's posting rows.
Every read sums to the total (deposits minus acknowledged-or-in-flight withdrawals, and zero over
all accounts: double entry), no balance goes negative, and withdrawals racing on one account
never together overdraw it. (Kingsbury, "Jepsen: bank", https://jepsen.io/analyses; the
workload of jepsen.tests.bank.)"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from crossmargin.adapters.sql.schema import postings
from crossmargin.core.ledger.postings import EXTERNAL
from crossmargin.engine.venue import Deposit, OpenAccount, Transfer, Venue, Withdraw
from crossmargin.errors import InputError
from tests.adapters.sql.support import connect, open_venue

ACCOUNTS = tuple(f"bank-{n}" for n in range(6))
OPENING_UNITS = 10_000
CLIENTS = 6
READERS = 2
RUN_S = 3.0
SEED = 7


def _setup(venue: Venue) -> int:
    for account in ACCOUNTS:
        venue.execute(OpenAccount(idempotency_key=f"open-{account}", account=account))
        venue.execute(Deposit(idempotency_key=f"fund-{account}", account=account, asset="USDC", amount_units=OPENING_UNITS))
    return venue.balances("USDC")[EXTERNAL]


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_bank_checker_reads_sum_to_total_and_never_negative(db: tuple[str, str | None]) -> None:
    store = connect(db)
    with open_venue(store) as venue:
        external_0 = _setup(venue)
        total = OPENING_UNITS * len(ACCOUNTS)
        stop = threading.Event()
        failures: list[str] = []
        reads = {"venue": 0, "sql": 0}

        def client(n: int) -> None:
            rng = random.Random(SEED * 100 + n)
            i = 0
            while not stop.is_set():
                i += 1
                key = f"client{n}-{i}"
                try:
                    if rng.random() < 0.8:
                        a, b = rng.sample(ACCOUNTS, 2)
                        venue.execute(Transfer(idempotency_key=key, from_account=a, to_account=b, asset="USDC", amount_units=rng.randint(1, 3_000)))
                    else:
                        venue.execute(Withdraw(idempotency_key=key, account=rng.choice(ACCOUNTS), asset="USDC", amount_units=rng.randint(1, 400)))
                except InputError:
                    pass  # insufficient balance: refused, nothing written

        def venue_reader() -> None:
            while not stop.is_set():
                cut = venue.balances("USDC")
                withdrawn = cut[EXTERNAL] - external_0  # withdrawals credit the outside world
                bank = [cut.get(a, 0) for a in ACCOUNTS]
                if sum(cut.values()) != 0:
                    failures.append(f"venue cut does not sum to zero: {sum(cut.values())}")
                if sum(bank) + withdrawn != total:
                    failures.append(f"venue cut: {sum(bank)} + withdrawn {withdrawn} != {total}")
                if min(bank) < 0:
                    failures.append(f"venue cut: negative balance {bank}")
                reads["venue"] += 1

        def sql_reader() -> None:
            engine = store.engine
            delta = sa.union_all(
                sa.select(postings.c.credit_account.label("account"), postings.c.amount_units.label("units")).where(postings.c.asset == "USDC"),
                sa.select(postings.c.debit_account.label("account"), (-postings.c.amount_units).label("units")).where(postings.c.asset == "USDC"),
            ).subquery()
            query = sa.select(delta.c.account, sa.func.sum(delta.c.units)).group_by(delta.c.account)
            while not stop.is_set():
                with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
                    cut = {a: int(v) for a, v in conn.execute(query).all()}
                bank = [cut.get(a, 0) for a in ACCOUNTS]
                withdrawn = cut[EXTERNAL] - external_0
                if sum(cut.values()) != 0:
                    failures.append(f"sql cut does not sum to zero: {sum(cut.values())}")
                if sum(bank) + withdrawn != total:
                    failures.append(f"sql cut: {sum(bank)} + withdrawn {withdrawn} != {total}")
                if min(bank) < 0:
                    failures.append(f"sql cut: negative balance {bank}")
                reads["sql"] += 1

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        threads += [threading.Thread(target=venue_reader), threading.Thread(target=sql_reader)]
        for t in threads:
            t.start()
        time.sleep(RUN_S)
        stop.set()
        for t in threads:
            t.join()
        assert failures == []
        assert reads["venue"] > 10 and reads["sql"] > 10
        assert venue.stats()["commands"] > 50


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_bank_checker_concurrent_withdrawals_never_overdraw(db: tuple[str, str | None]) -> None:
    with open_venue(connect(db)) as venue:
        _setup(venue)
        account = ACCOUNTS[0]
        with ThreadPoolExecutor(16) as pool:
            futures = [
                pool.submit(venue.execute, Withdraw(idempotency_key=f"race-{n}", account=account, asset="USDC", amount_units=3_000))
                for n in range(16)
            ]
            outcomes = [f.exception() is None for f in futures]
        assert sum(outcomes) == OPENING_UNITS // 3_000  # three fit, the thirteen others are refused
        assert venue.balances("USDC")[account] == OPENING_UNITS - 3_000 * sum(outcomes)
