#!/usr/bin/env python3
"""Writes a valid, hash-chained Carteira journal (format 1) for the replay
benchmark: genesis, MACHINES registrations, then TRANSFERS transfers of 1-100
centavos between seeded random pairs, never more than the payer has, every
one with a request id (the worst case for the ledger's memory).

usage: make-journal.py PATH [--machines N] [--transfers N]

Written independently of the Swift encoder, so a journal it writes that
`carteira-server journal verify` accepts also checks the two agree on the
format. Deterministic: the same arguments write the same bytes.
"""
import argparse
import datetime
import hashlib
import random

EPOCH_MS = 1_795_651_200_000  # 2026-11-26T00:00:00Z
# Far in the future, so the server rotates no key at start-up.
EXPIRES = "2099-01-01T00:00:00.000Z"


def iso(ms):
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def key(rng):
    b = bytearray(rng.getrandbits(8) for _ in range(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--machines", type=int, default=10_000)
    parser.add_argument("--transfers", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = random.Random(42)
    prev = "0" * 64
    out = []
    size = 0

    # `at` is the epoch plus the seq in milliseconds: times stay in order.
    def at(seq):
        return iso(EPOCH_MS + seq)

    def emit(body):
        nonlocal prev, size
        digest = hashlib.sha256(f"{prev} {body}".encode()).hexdigest()
        line = f"{body} hash={digest}\n"
        out.append(line)
        size += len(line)
        prev = digest

    emit(f"seq=0 at={at(0)} type=genesis format=carteira-journal/1")
    names = [f"bench-{i}" for i in range(args.machines)]
    keys = []
    balances = [10_000] * args.machines
    token = "ab" * 32
    for i, name in enumerate(names):
        seq = 1 + i
        k = key(rng)
        keys.append(k)
        emit(
            f"seq={seq} at={at(seq)} type=registered machine={name} key={k} expires={EXPIRES}"
            f" token={token} balance=10000"
        )
    with open(args.path, "w", encoding="ascii") as f:
        f.writelines(out)
        out.clear()
        first = 1 + args.machines
        for seq in range(first, first + args.transfers):
            src = rng.randrange(args.machines)
            while balances[src] == 0:
                src = (src + 1) % args.machines
            dst = rng.randrange(args.machines - 1)
            if dst >= src:
                dst += 1
            amount = min(1 + rng.randrange(100), balances[src])
            balances[src] -= amount
            balances[dst] += amount
            emit(
                f"seq={seq} at={at(seq)} type=transfer tx=T{seq:012d} from={names[src]} to={names[dst]}"
                f" key={keys[dst]} amount={amount} req=pay-{seq}"
            )
            if len(out) >= 10_000:
                f.writelines(out)
                out.clear()
        f.writelines(out)
    print(f"wrote {args.path}: {1 + args.machines + args.transfers} lines, {size} bytes")


if __name__ == "__main__":
    main()
