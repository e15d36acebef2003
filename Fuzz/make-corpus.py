#!/usr/bin/env python3
"""Writes the committed seed corpora under Fuzz/Corpus/<target>/.

Seeds are real lines from the specs' examples and the documented forms, plus
the awkward cases: torn and NUL-filled tails, CRLF, empty and long lines,
bad UTF-8. Journal hashes are computed here as JOURNAL.md defines them.
Run it again after changing a seed; libFuzzer adds what it finds to the
scratch corpus in .build-fuzz/corpus/, never here (tools/fuzz).
"""
import hashlib
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
ZERO = "0" * 64
ALICE_KEY = "0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6e"
BOB_KEY = "7c1e9b2a-4d3f-4e8a-b1c2-d3e4f5a6b7c8"
NEW_KEY = "5be1c0c3-a9f0-4e1d-8f1b-2c3d4e5f6a7b"
TOKEN = "5be1c0c3a9f04e1d8f1b2c3d4e5f6a7b"
DIGEST = hashlib.sha256(TOKEN.encode()).hexdigest()


def write(target, name, data):
    directory = os.path.join(HERE, "Corpus", target)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def chain(texts, previous=ZERO):
    """The journal lines for `texts`, each with its hash; and the last hash."""
    lines = []
    for text in texts:
        h = hashlib.sha256((previous + " " + text).encode()).hexdigest()
        lines.append(f"{text} hash={h}\n")
        previous = h
    return lines, previous


JOURNAL_TEXTS = [
    "seq=0 at=2026-11-26T19:22:09.123Z type=genesis format=carteira-journal/1",
    f"seq=1 at=2026-11-26T19:22:10.004Z type=registered machine=alice key={ALICE_KEY} expires=2026-11-26T19:25:10.004Z token={DIGEST} balance=10000",
    f"seq=2 at=2026-11-26T19:22:11.410Z type=registered machine=bob key={BOB_KEY} expires=2026-11-26T19:25:11.410Z token={DIGEST} balance=10000",
    f"seq=3 at=2026-11-26T19:22:30.000Z type=transfer tx=T000000000003 from=alice to=bob key={BOB_KEY} amount=5000 req=pay-1",
    f"seq=4 at=2026-11-26T19:25:10.004Z type=key_rotated machine=alice key={NEW_KEY} expires=2026-11-26T19:28:10.004Z reason=expired",
    f"seq=5 at=2026-11-26T19:25:12.000Z type=transfer tx=T000000000005 from=bob to=alice key={ALICE_KEY} amount=1 req=-",
    f"seq=6 at=2026-11-26T19:26:00.999Z type=key_rotated machine=bob key=9a7d3e5f-1b2c-4d6e-8f8d-3c1e6b2a4c9e expires=2026-11-26T19:29:00.999Z reason=request",
]


def protocol():
    t = "fuzz-request"
    lines = {
        "ping": "PING", "ping-lower": "ping", "ping-crlf": "PING\r", "register": "REGISTER|alice",
        "login": f"LOGIN|alice|{TOKEN}", "login-badtoken": "LOGIN|alice|XYZ", "whoami": "WHOAMI",
        "balance": "BALANCE", "key": "KEY", "rotate": "Rotate", "check": f"CHECK|{BOB_KEY}",
        "send": f"SEND|{BOB_KEY}|50,00|pay-1", "send-dot": f"SEND|{BOB_KEY}|50.25",
        "send-short": f"SEND|{BOB_KEY}|50,5", "send-max": f"SEND|{BOB_KEY}|999999999999,99|x_-9",
        "send-zero": f"SEND|{BOB_KEY}|0,00", "send-fields": "SEND|a|b|c|d", "history": "HISTORY",
        "history-limit": "HISTORY|1000", "history-over": "HISTORY|1001", "quit": "QUIT",
        "unknown": "FROB|x", "empty-fields": "||", "long-s": "\u017fend|x|1",
        "combining": "SEND|\u0301|1|\u0301", "kelvin": "\u212aEY", "cr-inside": "CHECK|a\rb",
        "nul": "PING\x00", "nul-before-command": "\x00\x00ROTATE", "bars": "REGISTER||",
    }
    for name, line in lines.items():
        write(t, name, line)
    write(t, "long", "REGISTER|" + "a" * 4100)

    t = "fuzz-amount"
    for name, text in {
        "int": "50", "comma1": "50,5", "comma2": "50,25", "dot": "50.25", "max": "999999999999,99",
        "13digits": "1234567890123", "zero": "0,00", "sep-only": ",", "two-sep": "1,2,3",
        "lead": ",5", "trail": "5,", "three-frac": "1,234", "space": " 1", "sign": "+1", "minus": "-1",
        "cents": "0,01", "brl": "R$ 1.234,56", "unicode-digit": "\u0661",
    }.items():
        write(t, name, text)
    write(t, "int64-max", (0x7FFFFFFFFFFFFFFF).to_bytes(8, "big"))
    write(t, "int64-min", (0x8000000000000000).to_bytes(8, "big"))
    write(t, "minus-one", b"\xff" * 8)

    t = "fuzz-server-line"
    for name, line in {
        "ok-pong": "OK|PONG", "ok-register": f"OK|alice|{TOKEN}|{ALICE_KEY}|10000",
        "ok-send": "OK|T000000000042|5000", "ok-again": "OK|T000000000042|5000|again", "ok-history": "OK|2",
        "tx": "TX|T000000000004|1795000000000|alice|bob|1234", "tx-neg": "TX|T1|-5|a|b|-1",
        "tx-plus": "TX|T1|+5|a|b|+1", "tx-short": "TX|T1|5|a|b",
        "err": "ERR|insufficient_funds|balance R$ 50,00 is below R$ 60,00", "err-bar": "ERR|x|a|b|c",
        "err-nomsg": "ERR|bad_request", "err-crlf": "ERR|bad_request|no\r",
        "evt-received": "EVT|received|T000000000042|alice|5000|15000",
        "evt-key": f"EVT|key|{NEW_KEY}|1795000180000", "evt-unknown": "EVT|future|1|2", "evt-bare": "EVT",
        "ok": "OK", "garbage": "HELLO|world", "empty": "", "int-overflow": "TX|T1|9223372036854775808|a|b|1",
    }.items():
        write(t, name, line)


def journal():
    lines, _ = chain(JOURNAL_TEXTS)
    t = "fuzz-journal-line"
    write(t, "genesis", lines[0])
    previous = ZERO
    for index, line in enumerate(lines):
        write(t, f"line-{index}", previous + "\n" + line)
        previous = line[-65:-1]
    for index, text in enumerate(JOURNAL_TEXTS):
        write(t, f"chain-{index}", "#chain\n" + text)
    write(t, "chain-unknown-type", "#chain\nseq=7 at=2026-11-26T19:27:00.000Z type=refund tx=T1")
    write(t, "chain-big-seq", "#chain\nseq=9223372036854775807 at=2026-11-26T19:27:00.000Z type=genesis format=carteira-journal/1")
    write(t, "chain-leading-zero", "#chain\nseq=01 at=2026-11-26T19:27:00.000Z type=genesis format=carteira-journal/1")
    write(t, "chain-upper-key", "#chain\n" + JOURNAL_TEXTS[4].replace(NEW_KEY, NEW_KEY.upper()))
    write(t, "bad-prev", "Z" * 64 + "\n" + lines[0])
    write(t, "upper-hash", lines[0][:-65] + lines[0][-65:].upper())
    write(t, "no-hash", JOURNAL_TEXTS[0])
    write(t, "crlf", lines[0][:-1] + "\r\n")

    t = "fuzz-journal-file"
    whole = "".join(lines)
    write(t, "whole", whole)
    write(t, "genesis-only", lines[0])
    write(t, "empty", "")
    write(t, "torn-half", whole + lines[0][:40])
    write(t, "torn-no-newline", whole[:-1])
    write(t, "torn-nul", whole + "\0" * 300)
    write(t, "torn-nul-line", "".join(lines[:3]) + lines[3][:50] + "\0" * 20 + "\n" + "\0" * 100)
    write(t, "damaged-last", whole[:-3] + "0\n" if whole[-2] != "0" else whole[:-3] + "1\n")
    write(t, "damaged-middle", whole.replace("amount=5000", "amount=5001"))
    write(t, "reordered", lines[0] + lines[2] + lines[1] + "".join(lines[3:]))
    write(t, "crlf", whole.replace("\n", "\r\n"))
    write(t, "long-line", lines[0] + "x" * 5000 + "\n")
    write(t, "long-tail", lines[0] + "x" * 5000)
    write(t, "long-nul-tail", lines[0] + "x" * 4000 + "\0" * 200)
    write(t, "chain-whole", "#chain\n" + "\n".join(JOURNAL_TEXTS) + "\n")
    write(t, "chain-torn", "#chain\n" + "\n".join(JOURNAL_TEXTS[:4]) + "\n" + JOURNAL_TEXTS[4][:30])
    write(t, "chain-overdraft", "#chain\n" + "\n".join(JOURNAL_TEXTS[:3] + [JOURNAL_TEXTS[3].replace("amount=5000", "amount=10001")]) + "\n")
    write(t, "chain-seq-gap", "#chain\n" + "\n".join(JOURNAL_TEXTS[:2] + [JOURNAL_TEXTS[2].replace("seq=2", "seq=3")]) + "\n")
    write(t, "chain-replay-req", "#chain\n" + "\n".join(JOURNAL_TEXTS[:4] + [JOURNAL_TEXTS[5].replace("from=bob to=alice", "from=alice to=bob").replace(ALICE_KEY, BOB_KEY).replace("req=-", "req=pay-1")]) + "\n")
    write(t, "chain-self", "#chain\n" + "\n".join(JOURNAL_TEXTS[:3] + [JOURNAL_TEXTS[3].replace("to=bob", "to=alice")]) + "\n")
    write(t, "chain-huge-balance", "#chain\n" + "\n".join(JOURNAL_TEXTS[:2] + [JOURNAL_TEXTS[2].replace("balance=10000", "balance=9223372036854775807")]) + "\n")


def console():
    t = "fuzz-console"
    for name, line in {
        "help": "help", "help-topic": "help history", "machines": "machines", "machines-limit": "machines --limit 2",
        "machines-json": "machines --format json", "machines-csv": "machines --format=csv",
        "machine": "machine alpha", "machine-json": "machine alpha --format json", "balance": "balance beta",
        "balance-key": "balance 22222222-2222-4222-9222-222222222222", "history": "history",
        "history-machine": "history alpha --limit 1 --format json", "tx": "tx T000000000004",
        "tx-csv": "tx T000000000005 --format csv", "sessions": "sessions --format json", "stats": "stats",
        "stats-json": "stats --format json", "rotate": "rotate gamma", "rotate-unknown": "rotate nobody",
        "verify": "verify", "shutdown": "shutdown", "shutdown-mixed-case": "shutDown", "quit": "quit", "tabs": "machines\t--limit\t1",
        "bad-option": "machines --frob", "missing-value": "history --limit", "limit-zero": "history --limit 0",
        "limit-plus": "history --limit +5", "format-bad": "stats --format xml", "extra": "verify now",
        "unicode": "machine \u00e1lpha", "empty": "", "spaces": "   ",
        "complete-command": "mach", "complete-machine": "balance al", "complete-format": "machines --format j",
        "complete-help": "help hi",
    }.items():
        write(t, name, line)
    write(t, "long", "machine " + "a" * 5000)
    # Found by CI's fuzz run: a refused name that starts with `[`, in bad
    # UTF-8 longer than the 80 characters a refusal repeats, with JSON asked.
    write(t, "refusal-bracket-json", b"machine [" + b"\xff" * 100 + b"[" * 40 + b"alpha --format json")


if __name__ == "__main__":
    shutil.rmtree(os.path.join(HERE, "Corpus"), ignore_errors=True)
    protocol()
    journal()
    console()
