"""Replay a quote table through the oracle core: the same `update` the live NATS feed calls.

The replay is engine logic (`engine.oracle_replay`); this module keeps the adapters' import path.
"""

from crossmargin.engine.oracle_replay import ReplayStep, param_table, replay

__all__ = ["ReplayStep", "param_table", "replay"]
