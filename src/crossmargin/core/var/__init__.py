"""Risk from real history: price history, scenario generators, VaR/ES measures, back-test
statistics. Pure: numpy/scipy in, numpy out (reading files lives in `adapters.history`)."""
