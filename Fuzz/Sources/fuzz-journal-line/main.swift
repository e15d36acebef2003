import FuzzSupport

runFuzzer(fuzzJournalLine)
