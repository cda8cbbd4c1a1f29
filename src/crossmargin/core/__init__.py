"""The pure risk core: numpy in, numpy out. No I/O, no clock, no logging, no globals."""
