"""JWT with RS256 and ES256 in the server: an auth hook verifies tokens against a JWKS file
and a PEM public key that the openssl command line made, with tokens that openssl signed
(`openssl dgst -sha256 -sign`; an ECDSA signature turned from DER into JWS's r||s). Good
tokens open streams; forged ones get 401 with the reason: alg none, HS256 with the public
key's PEM as the HMAC secret, a kid naming another key, a signature from another key."""

import base64
import json
import os
import re
import subprocess

import frtest as ft

APP = """
    local freshet = require "freshet"
    local app = freshet.app {}
    app:stream("/jwks/:room", "routes/jwks.lua")
    app:stream("/pem/:room", "routes/pem.lua")
    return app
"""

ROUTE = """
    local jwt = require("freshet").jwt
    local KEYS = assert(jwt.{fn}("{path}"))
    local route = {}
    function route.auth(req) return jwt.authenticate(req, KEYS, { aud = "rooms" }) end
    function route.topics(req, who) return { "room:" .. req.params.room } end
    return route
"""


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def openssl(*args, data=None):
    p = subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=30)
    ft.check(p.returncode == 0, f"openssl {' '.join(args)} failed", p.stderr.decode())
    return p.stdout


def der_ecdsa_to_raw(der):
    """SEQUENCE { INTEGER r, INTEGER s } → r||s, 32 bytes each (RFC 7518 3.4)."""
    ft.check(der[0] == 0x30, "not a DER sequence", der.hex())
    pos = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7f)
    out = b""
    for _ in range(2):
        ft.check(der[pos] == 0x02, "not a DER integer", der.hex())
        n = der[pos + 1]
        out += der[pos + 2:pos + 2 + n].lstrip(b"\0").rjust(32, b"\0")
        pos += 2 + n
    return out


class Keys:
    def __init__(self, d):
        self.d = d
        self.rsa = os.path.join(d, "rsa.pem")
        self.ec = os.path.join(d, "ec.pem")
        self.other = os.path.join(d, "other.pem")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                self.rsa)
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                self.other)
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                self.ec)
        self.rsa_pub = os.path.join(d, "rsa.pub.pem")
        openssl("pkey", "-in", self.rsa, "-pubout", "-out", self.rsa_pub)

    def jwks(self):
        modulus = openssl("rsa", "-in", self.rsa, "-modulus", "-noout").decode()
        n = bytes.fromhex(modulus.strip().split("=", 1)[1])
        text = openssl("ec", "-in", self.ec, "-text", "-noout").decode()
        pub = re.search(r"pub:\s*\n((?:\s+[0-9a-f:]+\n)+)", text).group(1)
        point = bytes.fromhex(re.sub(r"[\s:]", "", pub))
        ft.check(len(point) == 65 and point[0] == 4, "uncompressed P-256 point", point.hex())
        return {"keys": [
            {"kty": "RSA", "kid": "r1", "use": "sig", "n": b64(n), "e": b64(b"\x01\x00\x01")},
            {"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(point[1:33]),
             "y": b64(point[33:])},
        ]}

    def token(self, header, claims, alg=None, key=None):
        signing = (b64(json.dumps(header).encode()) + "." +
                   b64(json.dumps(claims).encode())).encode()
        alg = alg or header["alg"]
        if alg == "none":
            return signing.decode() + "."
        sig = openssl("dgst", "-sha256", "-sign", key or (self.ec if alg == "ES256" else self.rsa),
                      data=signing)
        if alg == "ES256":
            sig = der_ecdsa_to_raw(sig)
        return signing.decode() + "." + b64(sig)


def run():
    d = ft.tempdir()
    keys = Keys(d)
    jwks_path = os.path.join(d, "jwks.json")
    with open(jwks_path, "w") as f:
        json.dump(keys.jwks(), f)
    app = ft.AppDir({"app.lua": APP,
                     "routes/jwks.lua": ROUTE.replace("{fn}", "jwks_file")
                                              .replace("{path}", jwks_path),
                     "routes/pem.lua": ROUTE.replace("{fn}", "key_file")
                                            .replace("{path}", keys.rsa_pub)})
    claims = {"sub": "ann", "aud": "rooms"}
    with ft.Server(app) as srv:
        with ft.subtest("RS256 and ES256 tokens signed by openssl open streams"):
            for path, header in (("/jwks/a", {"alg": "RS256", "kid": "r1"}),
                                 ("/jwks/a", {"alg": "ES256", "kid": "e1", "typ": "JWT"}),
                                 ("/pem/a", {"alg": "RS256"})):
                token = keys.token(header, claims)
                s = ft.SSEStream(srv.port, path, headers={"Authorization": f"Bearer {token}"})
                ft.check_eq(s.status, 200, f"{path} with {header}")
                s.close()

        with ft.subtest("forged tokens get 401 with the reason"):
            with open(keys.rsa_pub, "rb") as f:
                pem = f.read()
            import hashlib
            import hmac
            hs_signing = (b64(b'{"alg":"HS256","kid":"r1"}') + "." +
                          b64(json.dumps(claims).encode()))
            hs_forged = hs_signing + "." + b64(hmac.new(pem, hs_signing.encode(),
                                                        hashlib.sha256).digest())
            cases = [
                ("/pem/a", hs_forged, "unsupported algorithm 'HS256' (the key is RS256)"),
                ("/jwks/a", hs_forged, "unsupported algorithm 'HS256' (the key is RS256)"),
                ("/jwks/a", keys.token({"alg": "none", "kid": "r1"}, claims),
                 "unsupported algorithm 'none' (the key is RS256)"),
                ("/jwks/a", keys.token({"alg": "RS256", "kid": "e1"}, claims),
                 "unsupported algorithm 'RS256' (the key is ES256)"),
                ("/jwks/a", keys.token({"alg": "RS256", "kid": "r1"}, claims, key=keys.other),
                 "bad signature"),
                ("/jwks/a", keys.token({"alg": "RS256", "kid": "zz"}, claims),
                 "unknown key id 'zz'"),
                ("/pem/a", keys.token({"alg": "RS256"}, dict(claims, aud="other")),
                 "wrong audience"),
            ]
            for path, token, reason in cases:
                r = ft.request(srv.port, "GET", path,
                               headers={"Authorization": f"Bearer {token}",
                                        "Accept": "text/event-stream"})
                err = r.check_error(401, f"{path}: {reason}")
                ft.check_eq(err, reason, f"the 401's reason on {path}")


ft.main(run, limit=60)
