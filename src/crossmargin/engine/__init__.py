"""Orchestration: revalue -> margin -> report, simulate, replay the oracle. Calls the core only;
whatever it reads or writes outside comes through the ports of `engine.ports` (in memory:
`engine.memory`) and the value types of `engine.inputs`. The CLI wires adapters into it."""
