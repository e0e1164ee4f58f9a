-- freshet.jwt: JSON Web Tokens signed with HS256 (HMAC-SHA256), for auth hooks.
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
-- Only HS256 is accepted: a token names its own algorithm, and a verifier that follows the
-- token's choice can be talked into "none" or into using a public key as an HMAC secret. The
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

local function check_secret(fn, n, secret)
  if type(secret) ~= "string" then arg_error(fn, n, "secret", "string", type(secret)) end
  if secret == "" then
    error(("freshet.jwt.%s: bad argument #%d 'secret' (must not be empty)"):format(fn, n), 3)
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

--- Signs claims (a table, encoded as the JSON payload) with secret; returns the token.
--- For tests, examples and apps that issue their own tokens. Raises for claims that cannot be
--- encoded as JSON.
function M.sign(claims, secret)
  if type(claims) ~= "table" then arg_error("sign", 1, "claims", "table", type(claims)) end
  check_secret("sign", 2, secret)
  local encoded, payload = pcall(cjson.encode, claims)
  if not encoded then
    error("freshet.jwt.sign: claims cannot be encoded as JSON: " .. tostring(payload), 2)
  end
  local input = HEADER .. "." .. crypto.base64url_encode(payload)
  return input .. "." .. crypto.base64url_encode(crypto.hmac_sha256(secret, input))
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

--- Verifies an HS256 token. Returns the claims table, or nil and the reason:
---   "malformed token: …", "unsupported algorithm '<alg>' (only HS256)", "bad signature",
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
  check_secret("verify", 2, secret)
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
  if header.alg ~= "HS256" then
    return nil, ("unsupported algorithm '%s' (only HS256)"):format(header.alg)
  end
  -- RFC 7515 4.1.11: extensions listed in crit must be understood; this verifier knows none.
  if header.crit ~= nil then return nil, "malformed token: unsupported critical header parameters" end

  local sig = crypto.base64url_decode(s)
  local expected = crypto.hmac_sha256(secret, h .. "." .. p)
  if not sig or not crypto.constant_time_equal(sig, expected) then return nil, "bad signature" end

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
  check_secret("authenticate", 2, secret)
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
