import FuzzSupport

runFuzzer(fuzzConsole)
