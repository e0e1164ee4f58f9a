-- freshet.jwt with RS256 and ES256: keys from PEM files and from a JWKS, tokens signed by
-- another implementation (PyJWT: tests/lua/fixtures/keys/make.py), and the ways a token may
-- try to choose how it is checked (alg none, HS256 with the public key as the secret, an alg
-- the key does not serve, a kid naming another key).
local jwt = require "freshet.jwt"
local crypto = require "freshet.crypto"
local cjson = require "cjson"

local DIR = "tests/lua/fixtures/keys/"
local NOW = 1700000000

local function read(name)
  local f = assert(io.open(DIR .. name, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local TOKENS = cjson.decode(read("tokens.json"))

local function forge(header, payload, sig)
  return crypto.base64url_encode(header) .. "." .. crypto.base64url_encode(payload) .. "."
    .. crypto.base64url_encode(sig or "")
end

describe("freshet.jwt keys", function()
  describe("jwt.key", function()
    it("loads public keys, private keys and certificates in PEM", function()
      for name, want in pairs({ ["rsa.pem"] = { "RS256", true }, ["rsa.pub.pem"] = { "RS256", false },
          ["rsa_pkcs1.pub.pem"] = { "RS256", false }, ["rsa.cert.pem"] = { "RS256", false },
          ["ec.pem"] = { "ES256", true }, ["ec_sec1.pem"] = { "ES256", true },
          ["ec.pub.pem"] = { "ES256", false } }) do
        local key, err = jwt.key_file(DIR .. name)
        assert.is_nil(err, name)
        assert.same(want, { key.alg, key.private }, name)
      end
    end)

    it("refuses weak and unsupported keys, and what is not a key", function()
      local key, err = jwt.key_file(DIR .. "rsa1024.pem")
      assert.is_nil(key)
      assert.matches("only RSA of 2048 bits or more", err)
      key, err = jwt.key_file(DIR .. "ec384.pem")
      assert.is_nil(key)
      assert.matches("P%-256", err)
      key, err = jwt.key("hello")
      assert.is_nil(key)
      assert.matches("not a PEM", err)
      key, err = jwt.key_file(DIR .. "missing.pem")
      assert.is_nil(key)
      assert.matches("missing.pem", err)
    end)

    it("checks its arguments", function()
      assert.has_error(function() jwt.key(42) end,
        "freshet.jwt.key: bad argument #1 'pem' (string expected, got number)")
      assert.has_error(function() jwt.key(read("rsa.pem"), { id = "x" }) end,
        "freshet.jwt.key: unknown option 'id' (kid)")
    end)
  end)

  describe("verify with a key", function()
    it("accepts RS256 and ES256 tokens signed by PyJWT", function()
      local rsa = assert(jwt.key_file(DIR .. "rsa.pub.pem"))
      local ec = assert(jwt.key_file(DIR .. "ec.pub.pem"))
      local claims, err = jwt.verify(TOKENS.rs256, rsa, { now = NOW, iss = "https://id.example" })
      assert.is_nil(err)
      assert.equal("ann", claims.sub)
      claims, err = jwt.verify(TOKENS.es256, ec, { now = NOW })
      assert.is_nil(err)
      assert.equal("ann", claims.sub)
      -- The certificate's key and the PKCS #1 form check the same token.
      assert.truthy(jwt.verify(TOKENS.rs256, assert(jwt.key_file(DIR .. "rsa.cert.pem")), { now = NOW }))
      assert.truthy(jwt.verify(TOKENS.rs256, assert(jwt.key_file(DIR .. "rsa_pkcs1.pub.pem")), { now = NOW }))
    end)

    it("signs and verifies with its own keys (both algorithms, and kid in the header)", function()
      for _, name in ipairs({ "rsa", "ec" }) do
        local private = assert(jwt.key_file(DIR .. name .. ".pem", { kid = "k-" .. name }))
        local public = assert(jwt.key_file(DIR .. name .. ".pub.pem"))
        local token = jwt.sign({ sub = "bob", exp = NOW + 60 }, private)
        local header = cjson.decode(crypto.base64url_decode(token:match("^[^.]+")))
        assert.same({ alg = private.alg, typ = "JWT", kid = "k-" .. name }, header)
        assert.same({ sub = "bob", exp = NOW + 60 }, (jwt.verify(token, public, { now = NOW })))
        assert.same({ nil, "token expired" }, { jwt.verify(token, public, { now = NOW + 60 }) })
      end
    end)

    it("refuses a token signed by another key", function()
      local rsa = assert(jwt.key_file(DIR .. "rsa.pub.pem"))
      assert.same({ nil, "bad signature" }, { jwt.verify(TOKENS.rs256_r2, rsa, { now = NOW }) })
      local ec = assert(jwt.key_file(DIR .. "ec.pub.pem"))
      local other = jwt.sign({ sub = "x" }, assert(jwt.key(read("ec_sec1.pem"))))
      assert.truthy(jwt.verify(other, ec)) -- the same key in SEC 1 form
      local h, p, s = TOKENS.es256:match("^([^.]+)%.([^.]+)%.([^.]+)$")
      local sig = crypto.base64url_decode(s)
      local flipped = sig:sub(1, 10) .. string.char((sig:byte(11) + 1) % 256) .. sig:sub(12)
      assert.same({ nil, "bad signature" },
        { jwt.verify(h .. "." .. p .. "." .. crypto.base64url_encode(flipped), ec, { now = NOW }) })
      -- An ES256 signature must be raw r||s of 64 bytes; DER or a short one is bad.
      assert.same({ nil, "bad signature" },
        { jwt.verify(h .. "." .. p .. "." .. crypto.base64url_encode(sig:sub(1, 63)), ec, { now = NOW }) })
    end)

    it("lets the key, not the token, choose the algorithm", function()
      local rsa = assert(jwt.key_file(DIR .. "rsa.pub.pem"))
      local ec = assert(jwt.key_file(DIR .. "ec.pub.pem"))
      -- HS256 with the RSA public key's PEM as the HMAC secret: the classic confusion.
      assert.same({ nil, "unsupported algorithm 'HS256' (the key is RS256)" },
        { jwt.verify(TOKENS.hs256_pubkey_secret, rsa, { now = NOW }) })
      -- And the PEM itself is never taken as a secret.
      assert.has_error(function() jwt.verify(TOKENS.hs256_pubkey_secret, read("rsa.pub.pem")) end,
        "freshet.jwt.verify: bad argument #2 'secret' (a PEM key is not an HMAC secret: "
          .. "load it with jwt.key or jwt.key_file)")
      assert.same({ nil, "unsupported algorithm 'none' (the key is RS256)" },
        { jwt.verify(forge('{"alg":"none"}', '{"sub":"root"}'), rsa) })
      assert.same({ nil, "unsupported algorithm 'PS256' (the key is RS256)" },
        { jwt.verify(TOKENS.ps256, rsa, { now = NOW }) })
      assert.same({ nil, "unsupported algorithm 'RS512' (the key is RS256)" },
        { jwt.verify(TOKENS.rs512, rsa, { now = NOW }) })
      assert.same({ nil, "unsupported algorithm 'RS256' (the key is ES256)" },
        { jwt.verify(TOKENS.rs256, ec, { now = NOW }) })
      assert.same({ nil, "unsupported algorithm 'ES256' (the key is RS256)" },
        { jwt.verify(TOKENS.es256, rsa, { now = NOW }) })
      -- A string secret takes HS256 only, whatever the token says.
      assert.same({ nil, "unsupported algorithm 'RS256' (only HS256)" },
        { jwt.verify(TOKENS.rs256, "a secret") })
    end)

    it("cannot sign with a public key", function()
      local rsa = assert(jwt.key_file(DIR .. "rsa.pub.pem"))
      assert.has_error(function() jwt.sign({ sub = "x" }, rsa) end,
        "freshet.jwt.sign: a public key cannot sign: load the private key with jwt.key")
    end)
  end)

  describe("verify with a JWKS", function()
    local set

    before_each(function()
      set = assert(jwt.jwks_file(DIR .. "jwks.json"))
    end)

    it("takes the RSA and P-256 signing keys, skipping enc and oct keys", function()
      local kids = {}
      for _, key in ipairs(set.keys) do kids[#kids + 1] = key.kid .. ":" .. key.alg end
      assert.same({ "r1:RS256", "e1:ES256", "r2:RS256" }, kids)
    end)

    it("picks the key the token's kid names", function()
      for _, name in ipairs({ "rs256", "es256", "rs256_r2" }) do
        local claims, err = jwt.verify(TOKENS[name], set, { now = NOW })
        assert.is_nil(err, name)
        assert.equal("ann", claims.sub)
      end
      assert.same({ nil, "bad signature" }, { jwt.verify(TOKENS.rs256_wrong_key, set, { now = NOW }) })
      assert.same({ nil, "unsupported algorithm 'HS256' (the key is RS256)" },
        { jwt.verify(TOKENS.hs256_pubkey_secret, set, { now = NOW }) })
    end)

    it("refuses unknown kids, and a token without kid when the set has several keys", function()
      local private = assert(jwt.key_file(DIR .. "rsa.pem"))
      assert.same({ nil, "unknown key id 'x-enc'" },
        { jwt.verify(jwt.sign({}, private, { kid = "x-enc" }), set) })
      assert.same({ nil, "unknown key id 's'" }, { jwt.verify(jwt.sign({}, private, { kid = "s" }), set) })
      assert.same({ nil, "the token names no key id (kid) and the key set has several keys" },
        { jwt.verify(TOKENS.rs256_nokid, set, { now = NOW }) })
      local one = assert(jwt.jwks({ keys = { cjson.decode(read("jwks.json")).keys[1] } }))
      assert.truthy(jwt.verify(TOKENS.rs256_nokid, one, { now = NOW }))
    end)

    it("refuses malformed sets and keys", function()
      local function bad(doc, pattern)
        local s, err = jwt.jwks(doc)
        assert.is_nil(s)
        assert.matches(pattern, err)
      end
      bad("not json", "JWKS is not JSON")
      bad("{}", 'JWKS has no "keys" list')
      bad('{"keys":[]}', "no RS256 or ES256 signing key")
      bad('{"keys":[{"kty":"RSA","n":"AQAB"}]}', "JWKS key 1: an RSA key needs n and e")
      bad('{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}', "JWKS key 1: malformed RSA key")
      bad('{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}', "32 bytes")
      local x = crypto.base64url_encode(("\1"):rep(32))
      bad(('{"keys":[{"kty":"EC","crv":"P-256","x":"%s","y":"%s"}]}'):format(x, x),
        "not a point on P%-256")
      local jwks = cjson.decode(read("jwks.json"))
      jwks.keys[1].alg = "RS512"
      bad(jwks, "alg 'RS512' does not fit the key %(RS256%)")
      jwks = cjson.decode(read("jwks.json"))
      jwks.keys[3].kid = "r1"
      bad(jwks, "two keys with kid 'r1'")
    end)

    it("serves authenticate", function()
      local req = { headers = { authorization = "Bearer " .. TOKENS.es256 }, query = {} }
      local who = jwt.authenticate(req, set, { now = NOW, iss = "https://id.example" })
      assert.equal("ann", who.sub)
      assert.same({ nil, 401, "wrong issuer" },
        { jwt.authenticate(req, set, { now = NOW, iss = "https://other" }) })
    end)
  end)

  describe("freshet.crypto keys", function()
    it("refuses to use a key for another algorithm", function()
      local rsa = crypto.key_from_pem(read("rsa.pem"))
      assert.has_error(function() crypto.verify(rsa, "ES256", "x", "y") end)
      assert.has_error(function() crypto.sign(rsa, "HS256", "x") end)
      assert.has_error(function() crypto.verify({}, "RS256", "x", "y") end)
      assert.equal("RS256", (crypto.key_info(rsa)))
    end)
  end)
end)
