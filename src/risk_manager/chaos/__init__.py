"""Chaos runs: random trading days with random faults (`generator`), judged by an independent oracle
(`oracle`) over the simulator's record of the broker's truth; `runs` drives many of them."""
