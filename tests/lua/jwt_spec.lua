-- freshet.jwt: HS256 tokens. Needs freshet.crypto (the test builds it from src/lua/crypto.c).
local jwt = require "freshet.jwt"
local crypto = require "freshet.crypto"
local cjson = require "cjson"

local SECRET = "correct horse battery staple"
local NOW = 1700000000

-- A token with any header and payload text, signed with HS256 over exactly those bytes.
local function forge(header, payload, secret)
  local input = crypto.base64url_encode(header) .. "." .. crypto.base64url_encode(payload)
  return input .. "." .. crypto.base64url_encode(crypto.hmac_sha256(secret or SECRET, input))
end

local HS256 = '{"alg":"HS256","typ":"JWT"}'

local function parts(token)
  return token:match("^([^.]*)%.([^.]*)%.([^.]*)$")
end

describe("freshet.jwt", function()
  describe("verify", function()
    it("returns the claims of a good token", function()
      local token = jwt.sign({ sub = "ann", exp = NOW + 60, room = "lobby" }, SECRET)
      local claims, err = jwt.verify(token, SECRET, { now = NOW })
      assert.is_nil(err)
      assert.same({ sub = "ann", exp = NOW + 60, room = "lobby" }, claims)
    end)

    it("accepts a token made elsewhere (the example on jwt.io)", function()
      local token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        .. "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
        .. "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
      local claims = assert(jwt.verify(token, "your-256-bit-secret"))
      assert.equal("John Doe", claims.name)
      assert.equal(1516239022, claims.iat)
    end)

    it("uses os.time() when opts.now is not given", function()
      assert.truthy(jwt.verify(jwt.sign({ exp = os.time() + 60 }, SECRET), SECRET))
      assert.same({ nil, "token expired" },
        { jwt.verify(jwt.sign({ exp = os.time() - 1 }, SECRET), SECRET) })
    end)

    describe("exp", function()
      local token = jwt.sign({ sub = "ann", exp = NOW }, SECRET)

      it("holds strictly before exp", function()
        assert.truthy(jwt.verify(token, SECRET, { now = NOW - 1 }))
        assert.same({ nil, "token expired" }, { jwt.verify(token, SECRET, { now = NOW }) })
        assert.same({ nil, "token expired" }, { jwt.verify(token, SECRET, { now = NOW + 3600 }) })
      end)

      it("allows opts.leeway seconds of clock skew", function()
        assert.truthy(jwt.verify(token, SECRET, { now = NOW + 29, leeway = 30 }))
        assert.same({ nil, "token expired" },
          { jwt.verify(token, SECRET, { now = NOW + 30, leeway = 30 }) })
      end)

      it("must be a number", function()
        local bad = jwt.sign({ exp = "tomorrow" }, SECRET)
        assert.same({ nil, "malformed token: exp must be a number" }, { jwt.verify(bad, SECRET) })
      end)
    end)

    describe("nbf", function()
      local token = jwt.sign({ nbf = NOW + 10 }, SECRET)

      it("refuses a token before its time", function()
        assert.same({ nil, "token not valid yet" }, { jwt.verify(token, SECRET, { now = NOW }) })
        assert.truthy(jwt.verify(token, SECRET, { now = NOW + 10 }))
      end)

      it("allows opts.leeway", function()
        assert.truthy(jwt.verify(token, SECRET, { now = NOW, leeway = 10 }))
        assert.same({ nil, "token not valid yet" },
          { jwt.verify(token, SECRET, { now = NOW, leeway = 9 }) })
      end)
    end)

    describe("signature", function()
      local token = jwt.sign({ sub = "ann", admin = false }, SECRET)
      local h, p, s = parts(token)

      it("must be made with the same secret", function()
        assert.same({ nil, "bad signature" }, { jwt.verify(token, SECRET .. "!") })
      end)

      it("covers the payload", function()
        local evil = h .. "." .. crypto.base64url_encode('{"sub":"ann","admin":true}') .. "." .. s
        assert.same({ nil, "bad signature" }, { jwt.verify(evil, SECRET) })
      end)

      it("covers the header", function()
        local other = crypto.base64url_encode('{"typ":"JWT","alg":"HS256"}')
        assert.same({ nil, "bad signature" }, { jwt.verify(other .. "." .. p .. "." .. s, SECRET) })
      end)

      it("refuses a changed, truncated or missing signature", function()
        local flipped = s:sub(1, 1) == "A" and "B" .. s:sub(2) or "A" .. s:sub(2)
        assert.same({ nil, "bad signature" }, { jwt.verify(h .. "." .. p .. "." .. flipped, SECRET) })
        assert.same({ nil, "bad signature" }, { jwt.verify(h .. "." .. p .. "." .. s:sub(1, 40), SECRET) })
        assert.same({ nil, "bad signature" }, { jwt.verify(h .. "." .. p .. ".", SECRET) })
      end)
    end)

    describe("alg", function()
      it("refuses alg none, even unsigned", function()
        local header = crypto.base64url_encode('{"alg":"none","typ":"JWT"}')
        local payload = crypto.base64url_encode('{"sub":"root"}')
        assert.same({ nil, "unsupported algorithm 'none' (only HS256)" },
          { jwt.verify(header .. "." .. payload .. ".", SECRET) })
      end)

      it("refuses every other algorithm, even with a valid HMAC", function()
        for _, alg in ipairs({ "HS512", "RS256", "ES256", "hs256", "NONE" }) do
          local token = forge(('{"alg":"%s"}'):format(alg), '{"sub":"ann"}')
          assert.same({ nil, ("unsupported algorithm '%s' (only HS256)"):format(alg) },
            { jwt.verify(token, SECRET) })
        end
      end)

      it("must be present", function()
        assert.same({ nil, "malformed token: the header has no alg" },
          { jwt.verify(forge('{"typ":"JWT"}', "{}"), SECRET) })
      end)

      it("refuses critical extensions it cannot know", function()
        local token = forge('{"alg":"HS256","crit":["b64"],"b64":false}', "{}")
        assert.same({ nil, "malformed token: unsupported critical header parameters" },
          { jwt.verify(token, SECRET) })
      end)
    end)

    describe("aud", function()
      it("matches a string claim against a string or a list", function()
        local token = jwt.sign({ aud = "chat" }, SECRET)
        assert.truthy(jwt.verify(token, SECRET, { aud = "chat" }))
        assert.truthy(jwt.verify(token, SECRET, { aud = { "admin", "chat" } }))
        assert.same({ nil, "wrong audience" }, { jwt.verify(token, SECRET, { aud = "admin" }) })
      end)

      it("matches a list claim when any of it is accepted", function()
        local token = jwt.sign({ aud = { "billing", "chat" } }, SECRET)
        assert.truthy(jwt.verify(token, SECRET, { aud = "chat" }))
        assert.same({ nil, "wrong audience" }, { jwt.verify(token, SECRET, { aud = { "admin" } }) })
      end)

      it("refuses a token without aud when one is required", function()
        assert.same({ nil, "wrong audience" },
          { jwt.verify(jwt.sign({ sub = "ann" }, SECRET), SECRET, { aud = "chat" }) })
      end)
    end)

    describe("iss", function()
      it("must be the expected issuer", function()
        local token = jwt.sign({ iss = "https://login.example" }, SECRET)
        assert.truthy(jwt.verify(token, SECRET, { iss = "https://login.example" }))
        assert.same({ nil, "wrong issuer" }, { jwt.verify(token, SECRET, { iss = "https://evil.example" }) })
        assert.same({ nil, "wrong issuer" },
          { jwt.verify(jwt.sign({}, SECRET), SECRET, { iss = "https://login.example" }) })
      end)
    end)

    describe("require", function()
      it("names the first missing claim", function()
        local token = jwt.sign({ sub = "ann" }, SECRET)
        assert.truthy(jwt.verify(token, SECRET, { require = { "sub" } }))
        assert.same({ nil, "missing claim 'exp'" }, { jwt.verify(token, SECRET, { require = { "sub", "exp" } }) })
      end)

      it("treats JSON null as missing", function()
        local token = forge(HS256, '{"sub":null}')
        assert.same({ nil, "missing claim 'sub'" }, { jwt.verify(token, SECRET, { require = { "sub" } }) })
      end)
    end)

    describe("malformed tokens", function()
      local good = jwt.sign({ sub = "ann" }, SECRET)
      local h, p, s = parts(good)
      local cases = {
        { "", "malformed token: expected three base64url parts separated by '.'" },
        { "abc", "malformed token: expected three base64url parts separated by '.'" },
        { h .. "." .. p, "malformed token: expected three base64url parts separated by '.'" },
        { good .. ".x", "malformed token: expected three base64url parts separated by '.'" },
        { "." .. p .. "." .. s, "malformed token: expected three base64url parts separated by '.'" },
        { h .. "=." .. p .. "." .. s, "malformed token: expected three base64url parts separated by '.'" },
        { " " .. good, "malformed token: expected three base64url parts separated by '.'" },
        { "a." .. p .. "." .. s, "malformed token: the header is not a base64url JSON object" },
        { crypto.base64url_encode("not json") .. "." .. p .. "." .. s,
          "malformed token: the header is not a base64url JSON object" },
        { crypto.base64url_encode('["HS256"]') .. "." .. p .. "." .. s,
          "malformed token: the header is not a base64url JSON object" },
      }
      for i, case in ipairs(cases) do
        it("refuses case " .. i, function()
          assert.same({ nil, case[2] }, { jwt.verify(case[1], SECRET) })
        end)
      end

      it("refuses a signed payload that is not a JSON object", function()
        for _, payload in ipairs({ "[1,2]", "42", "{", "x" }) do
          assert.same({ nil, "malformed token: the payload is not a base64url JSON object" },
            { jwt.verify(forge(HS256, payload), SECRET) }, payload)
        end
      end)
    end)

    it("raises for misuse, naming the argument", function()
      assert.has_error(function() jwt.verify(nil, SECRET) end,
        "freshet.jwt.verify: bad argument #1 'token' (string expected, got nil)")
      assert.has_error(function() jwt.verify("a.b.c", nil) end,
        "freshet.jwt.verify: bad argument #2 'secret' (string, jwt.key or jwt.jwks expected, got nil)")
      assert.has_error(function() jwt.verify("a.b.c", "") end,
        "freshet.jwt.verify: bad argument #2 'secret' (must not be empty)")
      assert.has_error(function() jwt.verify("a.b.c", SECRET, { audience = "x" }) end,
        "freshet.jwt.verify: unknown option 'audience' (leeway, now, aud, iss, require)")
      assert.has_error(function() jwt.verify("a.b.c", SECRET, { leeway = -1 }) end,
        "freshet.jwt.verify: opts.leeway must be a number of seconds >= 0, got -1")
      assert.has_error(function() jwt.verify("a.b.c", SECRET, { now = 1700000000000 }) end,
        "freshet.jwt.verify: opts.now must be a number of seconds since the epoch (freshet.now() gives milliseconds), got 1700000000000")
      assert.has_error(function() jwt.verify("a.b.c", SECRET, { aud = {} }) end,
        "freshet.jwt.verify: opts.aud must be a string or a non-empty list of strings, got table")
    end)
  end)

  describe("sign", function()
    it("makes a standard HS256 token", function()
      local token = jwt.sign({ sub = "ann" }, SECRET)
      local h, p, s = parts(token)
      assert.same({ alg = "HS256", typ = "JWT" }, cjson.decode(crypto.base64url_decode(h)))
      assert.same({ sub = "ann" }, cjson.decode(crypto.base64url_decode(p)))
      assert.equal(crypto.hmac_sha256(SECRET, h .. "." .. p), crypto.base64url_decode(s))
    end)

    it("raises for what cannot be a token", function()
      assert.has_error(function() jwt.sign("ann", SECRET) end,
        "freshet.jwt.sign: bad argument #1 'claims' (table expected, got string)")
      assert.has_error(function() jwt.sign({ f = print }, SECRET) end,
        "freshet.jwt.sign: claims cannot be encoded as JSON: Cannot serialise function: type not supported")
    end)
  end)

  describe("from_request", function()
    local function req(headers, query)
      return { method = "GET", path = "/", params = {}, query = query or {}, headers = headers or {},
               remote = "127.0.0.1" }
    end

    it("takes a Bearer token from the Authorization header", function()
      assert.same({ "abc.def.ghi", "header" },
        { jwt.from_request(req({ authorization = "Bearer abc.def.ghi" })) })
      assert.same({ "abc.def.ghi", "header" },
        { jwt.from_request(req({ authorization = "bearer   abc.def.ghi " })) })
    end)

    it("takes it from the named cookie", function()
      local r = req({ cookie = "theme=dark; session=abc.def.ghi" })
      assert.same({ "abc.def.ghi", "cookie" }, { jwt.from_request(r, { cookie = "session" }) })
      assert.same({ nil, "no token: expected an Authorization: Bearer header or a 'token' query parameter" },
        { jwt.from_request(r) })
    end)

    it("takes it from the query, by default from ?token=", function()
      assert.same({ "abc", "query" }, { jwt.from_request(req(nil, { token = "abc" })) })
      assert.same({ "abc", "query" }, { jwt.from_request(req(nil, { jwt = "abc" }), { query = "jwt" }) })
      assert.same({ nil, "no token: expected an Authorization: Bearer header" },
        { jwt.from_request(req(nil, { token = "abc" }), { query = false }) })
    end)

    it("prefers the header, then the cookie, then the query", function()
      local r = req({ authorization = "Bearer h", cookie = "s=c" }, { token = "q" })
      assert.equal("h", jwt.from_request(r, { cookie = "s" }))
      r.headers.authorization = nil
      assert.equal("c", jwt.from_request(r, { cookie = "s" }))
      r.headers.cookie = nil
      assert.equal("q", jwt.from_request(r, { cookie = "s" }))
    end)

    it("ignores other schemes and empty values", function()
      local r = req({ authorization = "Basic YW5uOnB3", cookie = "s=" }, { token = "" })
      assert.same({ nil, "no token: expected an Authorization: Bearer header, a 's' cookie or a 'token' query parameter" },
        { jwt.from_request(r, { cookie = "s" }) })
    end)

    it("raises for misuse", function()
      assert.has_error(function() jwt.from_request(nil) end,
        "freshet.jwt.from_request: bad argument #1 'req' (table expected, got nil)")
      assert.has_error(function() jwt.from_request(req(), { cookies = "s" }) end,
        "freshet.jwt.from_request: unknown option 'cookies' (cookie, header, query)")
    end)
  end)

  describe("authenticate", function()
    it("gives the claims, or nil, 401 and the reason, for an auth hook", function()
      local token = jwt.sign({ sub = "ann", aud = "chat" }, SECRET)
      local r = { headers = { authorization = "Bearer " .. token }, query = {} }
      assert.equal("ann", jwt.authenticate(r, SECRET, { aud = "chat" }).sub)
      assert.same({ nil, 401, "wrong audience" }, { jwt.authenticate(r, SECRET, { aud = "x" }) })
      assert.same({ nil, 401, "no token: expected an Authorization: Bearer header or a 'token' query parameter" },
        { jwt.authenticate({ headers = {}, query = {} }, SECRET) })
      assert.has_error(function() jwt.authenticate(r, SECRET, { bogus = 1 }) end,
        "freshet.jwt.authenticate: unknown option 'bogus' (cookie, header, query, leeway, now, aud, iss, require)")
    end)
  end)

  it("is reachable as freshet.jwt", function()
    assert.equal(jwt, require("freshet").jwt)
  end)
end)
