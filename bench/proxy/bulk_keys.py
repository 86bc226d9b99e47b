#!/usr/bin/env python3
"""Adds API keys straight into a stopped Tollgate's SQLite database, for benchmarks that need
far more keys than the admin API creates in reasonable time (about 30 ms a key).

    python3 bench/proxy/bulk_keys.py DB_FILE COUNT >>keys.tsv

Each new key is a copy of an existing key row (same owner, plan and kind) with its own id,
name, prefix and SHA-256 digest, the shape Tollgate stores. Prints `key <TAB> user id <TAB>
key id` per key, as bench/proxy-instructions.sh's key file holds them. Only for benchmarks: no
event is recorded for these keys.
"""
import hashlib
import secrets
import sqlite3
import string
import sys

ALPHANUMERIC = string.ascii_letters + string.digits
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def main() -> int:
    if len(sys.argv) != 3 or not sys.argv[2].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    path, count = sys.argv[1], int(sys.argv[2])
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    template = db.execute(
        "SELECT * FROM api_keys WHERE deleted_at IS NULL AND revoked_at IS NULL AND kind = 'live' LIMIT 1"
    ).fetchone()
    if template is None:
        print("bulk_keys: the database holds no live key to copy", file=sys.stderr)
        return 1
    columns = template.keys()
    placeholders = ", ".join("?" for _ in columns)
    insert = f"INSERT INTO api_keys ({', '.join(columns)}) VALUES ({placeholders})"
    out = []
    rows = []
    for n in range(count):
        key = "tg_live_" + "".join(secrets.choice(ALPHANUMERIC) for _ in range(40))
        key_id = "key_" + "".join(secrets.choice(CROCKFORD) for _ in range(26))
        row = dict(template)
        row.update(
            id=key_id,
            name=f"bulk {n}",
            prefix=key[:16],
            key_digest=hashlib.sha256(key.encode()).hexdigest(),
        )
        rows.append([row[c] for c in columns])
        out.append(f"{key}\t{template['user_id']}\t{key_id}")
    with db:
        db.executemany(insert, rows)
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
