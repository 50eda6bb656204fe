"""A local OIDC issuer for tests: an RSA key, its JWKS served on loopback, signed tokens."""

from __future__ import annotations

import functools
import json
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://issuer.test/pool"
AUDIENCE = "hevcq-app"


class Issuer:
    """Signs tokens with a fresh key; ``jwks_url`` serves its JWKS from 127.0.0.1.

    Call ``close()`` when done (the fixtures do).
    """

    def __init__(self, folder: Path, kid: str = "k1") -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = kid
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=kid, use="sig", alg="RS256")
        path = folder / "jwks.json"
        path.write_text(json.dumps({"keys": [jwk]}))
        handler = functools.partial(_Quiet, directory=str(folder))
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self.jwks_url = f"http://127.0.0.1:{self._http.server_address[1]}/jwks.json"

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def token(self, sub: str = "alice", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}  # None: leave the claim out
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": self.kid})


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass
