-- freshet.jwt: JSON Web Tokens signed with HS256 (HMAC-SHA256), RS256 (RSA) or ES256 (ECDSA on
-- P-256), for auth hooks.
--
--   local jwt = require("freshet").jwt
--   function route.auth(req)
--     local token, err = jwt.from_request(req, { cookie = "session" })
--     if not token then return nil, 401, err end
--     local claims, why = jwt.verify(token, SECRET, { aud = "chat" })
--     if not claims then return nil, 401, why end
--     return { id = claims.sub }
--   end
--
--   local KEYS = assert(jwt.jwks_file("/etc/freshet/jwks.json"))   -- or jwt.key_file(pem)
--   local claims, why = jwt.verify(token, KEYS, { iss = "https://id.example.com" })
--
-- The key decides the algorithm, never the token: a string is an HMAC secret and verifies
-- only HS256; an RSA key (jwt.key, jwt.key_file, a JWKS entry) only RS256; an EC P-256 key
-- only ES256. A token naming another algorithm ("none" included) is refused, so it cannot talk
-- the verifier into skipping the signature or into using a public key as an HMAC secret. The
-- signature is checked before the payload is parsed, so claims from a forged token are never
-- even decoded.
--
-- The HMAC, base64url and the comparison come from the C module freshet.crypto (libcrypto),
-- which the server preloads. Outside the server, build src/lua/crypto.c as freshet/crypto.so
-- (see docs/LUA_API.md, "Outside the server").
local ok, crypto = pcall(require, "freshet.crypto")
if not ok then
  error("freshet.jwt needs the C module freshet.crypto, which the freshet server provides; "
    .. "outside the server build src/lua/crypto.c as freshet/crypto.so on package.cpath ("
    .. tostring(crypto) .. ")", 2)
end
local cjson = require "cjson"
local request = require "freshet.request"

local M = {}

local function arg_error(fn, n, name, expected, got)
  error(("freshet.jwt.%s: bad argument #%d '%s' (%s expected, got %s)"):format(
    fn, n, name, expected, got), 3)
end

-- Key objects (jwt.key) and key sets (jwt.jwks) are tables with these metatables.
local KEY, KEYSET = { __name = "freshet.jwt.key" }, { __name = "freshet.jwt.keyset" }

local function is_key(v) return type(v) == "table" and getmetatable(v) == KEY end
local function is_keyset(v) return type(v) == "table" and getmetatable(v) == KEYSET end

-- An HMAC secret (a non-empty string that is not a PEM key), a key, or, where sets is true,
-- a key set.
local function check_secret(fn, n, secret, sets)
  if is_key(secret) or (sets and is_keyset(secret)) then return end
  if type(secret) ~= "string" then
    arg_error(fn, n, "secret", sets and "string, jwt.key or jwt.jwks" or "string or jwt.key",
      type(secret))
  end
  if secret == "" then
    error(("freshet.jwt.%s: bad argument #%d 'secret' (must not be empty)"):format(fn, n), 3)
  end
  -- The classic confusion: an RSA public key's PEM used as an HMAC secret lets anyone who
  -- has the public key sign HS256 tokens. A PEM is never accepted as a secret.
  if secret:find("^%s*%-%-%-%-%-BEGIN ") then
    error(("freshet.jwt.%s: bad argument #%d 'secret' (a PEM key is not an HMAC secret: "
      .. "load it with jwt.key or jwt.key_file)"):format(fn, n), 3)
  end
end

local function check_opts(fn, n, opts, allowed, list)
  if opts == nil then return {} end
  if type(opts) ~= "table" then arg_error(fn, n, "opts", "table", type(opts)) end
  for k in pairs(opts) do
    if not allowed[k] then
      error(("freshet.jwt.%s: unknown option '%s' (%s)"):format(fn, tostring(k), list), 3)
    end
  end
  return opts
end

-- A string, or a non-empty list of strings, as a set; raises naming the option otherwise.
local function string_set(fn, name, v)
  if type(v) == "string" then return { [v] = true } end
  if type(v) == "table" and #v > 0 then
    local set = {}
    for i, s in ipairs(v) do
      if type(s) ~= "string" then
        error(("freshet.jwt.%s: opts.%s[%d] must be a string, got %s"):format(fn, name, i, type(s)), 3)
      end
      set[s] = true
    end
    return set
  end
  error(("freshet.jwt.%s: opts.%s must be a string or a non-empty list of strings, got %s"):format(
    fn, name, type(v)), 3)
end

local HEADER = crypto.base64url_encode('{"alg":"HS256","typ":"JWT"}')

local function wrap_key(k, kid)
  local alg, bits, private = crypto.key_info(k)
  return setmetatable({ alg = alg, bits = bits, private = private, kid = kid, _k = k }, KEY)
end

--- A key from PEM text: a public key ("PUBLIC KEY", "RSA PUBLIC KEY"), a certificate (its
--- public key), or a private key ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"), which
--- can also sign. RSA keys need 2048 bits or more and serve RS256; EC keys must be on P-256
--- and serve ES256. Returns the key (fields alg, bits, private, kid), or nil and the reason.
--- opts.kid names the key (sign puts it in the token's header).
function M.key(pem, opts)
  if type(pem) ~= "string" then arg_error("key", 1, "pem", "string", type(pem)) end
  opts = check_opts("key", 2, opts, { kid = true }, "kid")
  if opts.kid ~= nil and type(opts.kid) ~= "string" then
    error("freshet.jwt.key: opts.kid must be a string, got " .. type(opts.kid), 2)
  end
  local k, err = crypto.key_from_pem(pem)
  if not k then return nil, err end
  return wrap_key(k, opts.kid)
end

local function read_file(fn, path)
  if type(path) ~= "string" then arg_error(fn, 1, "path", "string", type(path)) end
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("*a")
  f:close()
  return text
end

--- jwt.key on the contents of a file. Returns the key, or nil and the reason.
function M.key_file(path, opts)
  local text, err = read_file("key_file", path)
  if not text then return nil, err end
  local k, why = M.key(text, opts)
  if not k then return nil, path .. ": " .. why end
  return k
end

-- One JWK (RFC 7517) as a key; nil and the reason when it is malformed; false when it is a
-- kind of key that does not sign (use = "enc") or that this verifier does not take.
local function jwk_key(jwk)
  if type(jwk) ~= "table" then return nil, "not a JSON object" end
  if jwk.use ~= nil and jwk.use ~= "sig" then return false end
  local function bytes(name)
    local v = jwk[name]
    if type(v) ~= "string" then return nil end
    return crypto.base64url_decode(v)
  end
  local k, err
  if jwk.kty == "RSA" then
    local n, e = bytes("n"), bytes("e")
    if not n or not e then return nil, "an RSA key needs n and e (base64url)" end
    k, err = crypto.key_from_jwk_rsa(n, e)
  elseif jwk.kty == "EC" then
    if jwk.crv ~= "P-256" then return false end
    local x, y = bytes("x"), bytes("y")
    if not x or not y then return nil, "an EC key needs x and y (base64url)" end
    k, err = crypto.key_from_jwk_ec("P-256", x, y)
  else
    return false -- "oct" (a shared secret has no place in a published set), "OKP", …
  end
  if not k then return nil, err end
  if jwk.kid ~= nil and type(jwk.kid) ~= "string" then return nil, "kid must be a string" end
  local key = wrap_key(k, jwk.kid)
  if jwk.alg ~= nil and jwk.alg ~= key.alg then
    return nil, ("alg '%s' does not fit the key (%s)"):format(tostring(jwk.alg), key.alg)
  end
  return key
end

--- A key set from a JWKS document (RFC 7517: {"keys": [...]}, as text or as a decoded table).
--- RSA keys (RS256) and EC P-256 keys (ES256) are taken; keys marked "use": "enc" and kinds
--- this verifier does not use are skipped; a malformed key of a kind it uses is an error.
--- verify picks a key by the token's kid. Returns the set, or nil and the reason.
function M.jwks(doc)
  if type(doc) == "string" then
    local decoded, value = pcall(cjson.decode, doc)
    if not decoded then return nil, "JWKS is not JSON: " .. tostring(value) end
    doc = value
  elseif type(doc) ~= "table" then
    arg_error("jwks", 1, "doc", "string or table", type(doc))
  end
  if type(doc) ~= "table" or type(doc.keys) ~= "table" then
    return nil, "JWKS has no \"keys\" list"
  end
  local set = { keys = {}, by_kid = {} }
  for i, jwk in ipairs(doc.keys) do
    local key, err = jwk_key(jwk)
    if key == nil then return nil, ("JWKS key %d: %s"):format(i, err) end
    if key then
      if key.kid then
        if set.by_kid[key.kid] then return nil, ("JWKS: two keys with kid '%s'"):format(key.kid) end
        set.by_kid[key.kid] = key
      end
      set.keys[#set.keys + 1] = key
    end
  end
  if #set.keys == 0 then return nil, "JWKS has no RS256 or ES256 signing key" end
  return setmetatable(set, KEYSET)
end

--- jwt.jwks on the contents of a file. Returns the set, or nil and the reason.
function M.jwks_file(path)
  local text, err = read_file("jwks_file", path)
  if not text then return nil, err end
  local set, why = M.jwks(text)
  if not set then return nil, path .. ": " .. why end
  return set
end

--- Signs claims (a table, encoded as the JSON payload) and returns the token: HS256 with a
--- string secret, RS256 or ES256 with a private key from jwt.key. opts.kid (or the key's kid)
--- goes into the header. For tests, examples and apps that issue their own tokens. Raises for
--- claims that cannot be encoded as JSON and for a public key.
function M.sign(claims, secret, opts)
  if type(claims) ~= "table" then arg_error("sign", 1, "claims", "table", type(claims)) end
  check_secret("sign", 2, secret)
  opts = check_opts("sign", 3, opts, { kid = true }, "kid")
  local encoded, payload = pcall(cjson.encode, claims)
  if not encoded then
    error("freshet.jwt.sign: claims cannot be encoded as JSON: " .. tostring(payload), 2)
  end
  local kid = opts.kid or (is_key(secret) and secret.kid) or nil
  if kid ~= nil and type(kid) ~= "string" then
    error("freshet.jwt.sign: opts.kid must be a string, got " .. type(kid), 2)
  end
  local header = HEADER
  if is_key(secret) or kid then
    local alg = is_key(secret) and secret.alg or "HS256"
    header = crypto.base64url_encode(cjson.encode({ alg = alg, typ = "JWT", kid = kid }))
  end
  local input = header .. "." .. crypto.base64url_encode(payload)
  local sig
  if is_key(secret) then
    if not secret.private then
      error("freshet.jwt.sign: a public key cannot sign: load the private key with jwt.key", 2)
    end
    local err
    sig, err = crypto.sign(secret._k, secret.alg, input)
    if not sig then error("freshet.jwt.sign: " .. tostring(err), 2) end
  else
    sig = crypto.hmac_sha256(secret, input)
  end
  return input .. "." .. crypto.base64url_encode(sig)
end

-- The key that checks a token with this header, or nil and why not.
local function key_for(header, secret)
  if type(secret) == "string" then
    if header.alg ~= "HS256" then
      return nil, ("unsupported algorithm '%s' (only HS256)"):format(header.alg)
    end
    return secret
  end
  local key = secret
  if is_keyset(secret) then
    local kid = header.kid
    if kid ~= nil and type(kid) ~= "string" then return nil, "malformed token: kid must be a string" end
    if kid then
      key = secret.by_kid[kid]
      if not key then return nil, ("unknown key id '%s'"):format(kid) end
    elseif #secret.keys == 1 then
      key = secret.keys[1]
    else
      return nil, "the token names no key id (kid) and the key set has several keys"
    end
  end
  if header.alg ~= key.alg then
    return nil, ("unsupported algorithm '%s' (the key is %s)"):format(header.alg, key.alg)
  end
  return key
end

-- Decodes one base64url part holding a JSON object; nil when it is anything else.
local function decode_object(part)
  local text = crypto.base64url_decode(part)
  if not text or not text:find("^%s*{") then return nil end
  local decoded, value = pcall(cjson.decode, text)
  if not decoded or type(value) ~= "table" then return nil end
  return value
end

local function is_number(v) return type(v) == "number" and v == v end

local verify_options = { leeway = true, now = true, aud = true, iss = true, require = true }

--- Verifies a token with secret: a string (HS256), a key from jwt.key / jwt.key_file (RS256
--- or ES256, as the key is) or a key set from jwt.jwks / jwt.jwks_file (the key the token's
--- kid names). Returns the claims table, or nil and the reason:
---   "malformed token: …", "unsupported algorithm '<alg>' (…)", "unknown key id '<kid>'",
---   "bad signature",
---   "token expired", "token not valid yet", "wrong audience", "wrong issuer",
---   "missing claim '<name>'".
--- opts (all optional):
---   leeway   seconds of clock skew allowed for exp and nbf (default 0)
---   now      the current time in seconds since the epoch (default os.time())
---   aud      a string or a list: the token's aud (a string or a list) must name one of them
---   iss      a string or a list: the token's iss must be one of them
---   require  a list of claim names that must be present, e.g. { "exp", "sub" }
--- exp and nbf are checked whenever the token has them; a token without exp never expires
--- unless opts.require names it.
function M.verify(token, secret, opts)
  if type(token) ~= "string" then arg_error("verify", 1, "token", "string", type(token)) end
  check_secret("verify", 2, secret, true)
  opts = check_opts("verify", 3, opts, verify_options, "leeway, now, aud, iss, require")
  local leeway, now = opts.leeway or 0, opts.now or os.time()
  if not is_number(leeway) or leeway < 0 then
    error("freshet.jwt.verify: opts.leeway must be a number of seconds >= 0, got " .. tostring(leeway), 2)
  end
  -- Past 1e11 (the year 5138) it is surely freshet.now(), which counts milliseconds.
  if not is_number(now) or now > 1e11 then
    error("freshet.jwt.verify: opts.now must be a number of seconds since the epoch "
      .. "(freshet.now() gives milliseconds), got " .. tostring(now), 2)
  end
  local auds = opts.aud ~= nil and string_set("verify", "aud", opts.aud) or nil
  local issuers = opts.iss ~= nil and string_set("verify", "iss", opts.iss) or nil
  if opts.require ~= nil and type(opts.require) ~= "table" then
    error("freshet.jwt.verify: opts.require must be a list of claim names, got " .. type(opts.require), 2)
  end

  local h, p, s = token:match("^([%w%-_]+)%.([%w%-_]+)%.([%w%-_]*)$")
  if not h then return nil, "malformed token: expected three base64url parts separated by '.'" end
  local header = decode_object(h)
  if not header then return nil, "malformed token: the header is not a base64url JSON object" end
  if type(header.alg) ~= "string" then return nil, "malformed token: the header has no alg" end
  local key, why = key_for(header, secret)
  if not key then return nil, why end
  -- RFC 7515 4.1.11: extensions listed in crit must be understood; this verifier knows none.
  if header.crit ~= nil then return nil, "malformed token: unsupported critical header parameters" end

  local sig = crypto.base64url_decode(s)
  local good
  if type(key) == "string" then
    good = sig and crypto.constant_time_equal(sig, crypto.hmac_sha256(key, h .. "." .. p))
  else
    good = sig and crypto.verify(key._k, key.alg, h .. "." .. p, sig)
  end
  if not good then return nil, "bad signature" end

  local claims = decode_object(p)
  if not claims then return nil, "malformed token: the payload is not a base64url JSON object" end

  if opts.require then
    for _, name in ipairs(opts.require) do
      if claims[name] == nil or claims[name] == cjson.null then
        return nil, ("missing claim '%s'"):format(tostring(name))
      end
    end
  end
  local exp, nbf = claims.exp, claims.nbf
  if exp ~= nil and not is_number(exp) then return nil, "malformed token: exp must be a number" end
  if nbf ~= nil and not is_number(nbf) then return nil, "malformed token: nbf must be a number" end
  -- RFC 7519 4.1.4: the token is accepted only strictly before exp.
  if exp and now >= exp + leeway then return nil, "token expired" end
  if nbf and now + leeway < nbf then return nil, "token not valid yet" end
  if issuers and not (type(claims.iss) == "string" and issuers[claims.iss]) then
    return nil, "wrong issuer"
  end
  if auds then
    local aud, found = claims.aud, false
    if type(aud) == "string" then
      found = auds[aud] == true
    elseif type(aud) == "table" then
      for _, a in ipairs(aud) do
        if type(a) == "string" and auds[a] then found = true break end
      end
    end
    if not found then return nil, "wrong audience" end
  end
  return claims
end

local from_request_options = { cookie = true, query = true, header = true }

--- Finds the token in a request, in this order: an "Authorization: Bearer <token>" header
--- (unless opts.header is false), the cookie named opts.cookie (when given), the query
--- parameter named opts.query (default "token"; false to not look there). The query comes
--- last because a browser's EventSource cannot set headers, and tokens in URLs end up in
--- logs. Returns the token and where it was found ("header", "cookie" or "query"), or nil and
--- a message fit for a 401.
function M.from_request(req, opts)
  if type(req) ~= "table" then arg_error("from_request", 1, "req", "table", type(req)) end
  opts = check_opts("from_request", 2, opts, from_request_options, "cookie, header, query")
  if opts.cookie ~= nil and (type(opts.cookie) ~= "string" or opts.cookie == "") then
    error("freshet.jwt.from_request: opts.cookie must be a cookie name, got " .. tostring(opts.cookie), 2)
  end
  local qname = opts.query
  if qname == nil then qname = "token" end
  if qname ~= false and (type(qname) ~= "string" or qname == "") then
    error("freshet.jwt.from_request: opts.query must be a parameter name or false, got " .. tostring(qname), 2)
  end
  local headers = type(req.headers) == "table" and req.headers or {}
  local tried = {}
  if opts.header ~= false then
    tried[#tried + 1] = "an Authorization: Bearer header"
    local auth = headers.authorization
    if type(auth) == "string" then
      local token = auth:match("^%s*[Bb][Ee][Aa][Rr][Ee][Rr]%s+(%S+)%s*$")
      if token then return token, "header" end
    end
  end
  if opts.cookie then
    tried[#tried + 1] = ("a '%s' cookie"):format(opts.cookie)
    local value = request.cookies(req)[opts.cookie]
    if value and value ~= "" then return value, "cookie" end
  end
  if qname then
    tried[#tried + 1] = ("a '%s' query parameter"):format(qname)
    local value = type(req.query) == "table" and req.query[qname] or nil
    if type(value) == "string" and value ~= "" then return value, "query" end
  end
  if #tried == 0 then return nil, "no token: every place to look for one is turned off" end
  local where = #tried == 1 and tried[1]
    or table.concat(tried, ", ", 1, #tried - 1) .. " or " .. tried[#tried]
  return nil, "no token: expected " .. where
end

--- from_request and verify in one call, shaped for an auth hook:
---   function route.auth(req) return jwt.authenticate(req, SECRET, { aud = "chat" }) end
--- Returns the claims (which become `who`), or nil, 401, reason. opts holds the options of
--- both functions (cookie, header, query; leeway, now, aud, iss, require).
function M.authenticate(req, secret, opts)
  if type(req) ~= "table" then arg_error("authenticate", 1, "req", "table", type(req)) end
  check_secret("authenticate", 2, secret, true)
  if opts ~= nil and type(opts) ~= "table" then arg_error("authenticate", 3, "opts", "table", type(opts)) end
  local find, check = {}, {}
  for k, v in pairs(opts or {}) do
    if from_request_options[k] then
      find[k] = v
    elseif verify_options[k] then
      check[k] = v
    else
      error(("freshet.jwt.authenticate: unknown option '%s' (%s)"):format(tostring(k),
        "cookie, header, query, leeway, now, aud, iss, require"), 2)
    end
  end
  local token, err = M.from_request(req, find)
  if not token then return nil, 401, err end
  local claims, why = M.verify(token, secret, check)
  if not claims then return nil, 401, why end
  return claims
end

return M
