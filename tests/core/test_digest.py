"""core/digest.py: the reports' SHA-256 and BLAKE2b are hashlib's, without loading OpenSSL."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from daemon.core.digest import blake2b, sha256

REPO = Path(__file__).resolve().parents[2]


@given(st.lists(st.binary(max_size=300), max_size=4))
def test_the_digests_are_hashlib_s(parts: list[bytes]) -> None:
    for ours, theirs in ((sha256, hashlib.sha256), (blake2b, hashlib.blake2b)):
        fed, reference = ours(), theirs()
        for part in parts:
            fed.update(part)
            reference.update(part)
        assert fed.hexdigest() == reference.hexdigest()
        assert ours(b"".join(parts)).hexdigest() == theirs(b"".join(parts)).hexdigest()


def test_a_policy_s_hash_loads_no_openssl() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys; from daemon.core.model import Policy; "
                           "from daemon.core.policy import policy_hash; print(policy_hash(Policy()), "
                           "'_hashlib' in sys.modules)"], cwd=REPO, capture_output=True, text=True, timeout=60)
    digest, loaded = done.stdout.split()
    assert len(digest) == 16 and loaded == "False", done.stderr
