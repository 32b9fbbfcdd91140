"""core/digest.py: the reports' SHA-256 is hashlib's, without loading OpenSSL."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from daemon.core.digest import sha256

REPO = Path(__file__).resolve().parents[2]


@given(st.lists(st.binary(max_size=300), max_size=4))
def test_the_digest_is_hashlib_s(parts: list[bytes]) -> None:
    ours, theirs = sha256(), hashlib.sha256()
    for part in parts:
        ours.update(part)
        theirs.update(part)
    assert ours.hexdigest() == theirs.hexdigest()
    assert sha256(b"".join(parts)).hexdigest() == hashlib.sha256(b"".join(parts)).hexdigest()


def test_a_policy_s_hash_loads_no_openssl() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys; from daemon.core.model import Policy; "
                           "from daemon.core.policy import policy_hash; print(policy_hash(Policy()), "
                           "'_hashlib' in sys.modules)"], cwd=REPO, capture_output=True, text=True, timeout=60)
    digest, loaded = done.stdout.split()
    assert len(digest) == 16 and loaded == "False", done.stderr
