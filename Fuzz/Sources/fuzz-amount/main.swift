import FuzzSupport

runFuzzer(fuzzAmount)
