"""The key pair an embedded farm's endpoint answers to, and how its clients carry it.

Made at random for each run; the endpoint gets it in its environment (a command line is
visible to every user) and the farm's other processes through theirs and the 0600 farm
file.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

# boto3's own names for a key pair: the child reads its pair from them, and the farm's
# clients find theirs there.
KEY_ID_ENV = "AWS_ACCESS_KEY_ID"
SECRET_ENV = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 - the variable's name, not a secret
# 128 bits, in hex: out of reach of guessing, and the dashboard's address with it still
# fits on one line of a terminal.
DASHBOARD_TOKEN_CHARS = 32


@dataclass(frozen=True, repr=False)
class Credentials:
    """The key pair the endpoint answers to: made at random for each run."""

    access_key_id: str
    secret_access_key: str

    @classmethod
    def generate(cls) -> Credentials:
        """A new random pair, shaped like AWS's (20 and 40 characters)."""
        return cls("HEVCQ" + secrets.token_hex(8).upper()[:15], secrets.token_urlsafe(30))

    def env(self) -> dict[str, str]:
        """The pair as boto3 reads it from the environment."""
        return {KEY_ID_ENV: self.access_key_id, SECRET_ENV: self.secret_access_key}

    def dashboard_token(self) -> str:
        """The token the run's dashboard asks for: derived from the secret, so every server
        of this farm (the ingest's, ``hevcq serve``) asks for the same one, and only who
        can read the 0600 farm file, or the address the ingest printed, has it."""
        mac = hmac.new(self.secret_access_key.encode(), b"hevcq dashboard", hashlib.sha256)
        return mac.hexdigest()[:DASHBOARD_TOKEN_CHARS]

    def __repr__(self) -> str:
        return f"Credentials({self.access_key_id!r}, <secret>)"


EMBEDDED_REGION = "us-east-1"  # moto's server answers any region; the farm uses this one


def embedded_env(credentials: Credentials) -> dict[str, str]:
    """The environment boto3 reads to reach an embedded endpoint: its run's key pair
    (set in this process's environment, presigning clients read it there too)."""
    return {**credentials.env(), "AWS_DEFAULT_REGION": EMBEDDED_REGION}
