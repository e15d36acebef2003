import FuzzSupport

runFuzzer(fuzzJournalFile)
