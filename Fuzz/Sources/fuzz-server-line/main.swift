import FuzzSupport

runFuzzer(fuzzServerLine)
