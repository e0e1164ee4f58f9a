-- freshet.http: requests from a hook to the app's own backend (its sessions, its permissions),
-- without holding up the worker: the hook waits, other connections go on.
--
--   local res, err = freshet.http.request{ url = "http://127.0.0.1:8080/session",
--                                          headers = { cookie = req.headers.cookie } }
--   if not res then return nil, 503, "session service: " .. err end
--
-- https:// URLs check the server's certificate against the system's store (or `ca`, a PEM
-- file) and the URL's host; `verify = false` turns the check off, for tests only.
--
-- Works in auth, topics, tier, publish, message and timers; not in filter (it runs per
-- delivery) nor while the app file loads. Inside freshet.test the fake server answers.
local has_core, core = pcall(require, "freshet.core")
if not has_core then core = nil end

local M = {}

local keys = { method = true, url = true, headers = true, body = true, timeout = true,
               ca = true, verify = true }
local key_list = "method, url, headers, body, timeout, ca, verify"

-- Blames the script's line: level 4 is the caller of M.request (fail < read_spec < request).
local function fail(msg)
  error("freshet.http.request: " .. msg, 4)
end

-- The request's arguments, checked and normalized: method, url, headers, body, timeout.
local function read_spec(spec)
  if type(spec) ~= "table" then
    fail("expects a table { url =, method =, headers =, body =, timeout =, ca =, verify = }, got "
      .. type(spec))
  end
  for k in pairs(spec) do
    if not keys[k] then
      fail(("unknown key '%s' (%s)"):format(tostring(k), key_list))
    end
  end
  if type(spec.url) ~= "string" then fail("url must be a string, got " .. type(spec.url)) end
  local method = spec.method or "GET"
  if type(method) ~= "string" or not method:match("^[%w!#$%%&'*+.^_`|~-]+$") then
    fail("method must be an HTTP method name, got " .. tostring(method))
  end
  local headers
  if spec.headers ~= nil then
    if type(spec.headers) ~= "table" then
      fail("headers must be a table of name = value, got " .. type(spec.headers))
    end
    headers = {}
    for k, v in pairs(spec.headers) do
      if type(k) ~= "string" then fail("header names must be strings, got " .. type(k)) end
      if type(v) == "number" then v = tostring(v) end
      if type(v) ~= "string" then
        fail(("header '%s' must be a string or number, got %s"):format(k, type(v)))
      end
      headers[k] = v
    end
  end
  local body = spec.body
  if type(body) == "table" then
    body = core.encode(body)
    headers = headers or {}
    local typed = false
    for k in pairs(headers) do
      if k:lower() == "content-type" then typed = true end
    end
    if not typed then headers["Content-Type"] = "application/json" end
  elseif body ~= nil and type(body) ~= "string" then
    fail("body must be a string or a table (sent as JSON), got " .. type(body))
  end
  local timeout = spec.timeout
  if timeout ~= nil and (type(timeout) ~= "number" or not (timeout > 0) or timeout == math.huge) then
    fail("timeout must be a number of milliseconds > 0, got " .. tostring(timeout))
  end
  if spec.ca ~= nil and (type(spec.ca) ~= "string" or spec.ca == "") then
    fail("ca must be the path of a PEM file, got " .. tostring(spec.ca))
  end
  if spec.verify ~= nil and type(spec.verify) ~= "boolean" then
    fail("verify must be true or false, got " .. type(spec.verify))
  end
  return method, spec.url, headers, body, timeout, spec.ca, spec.verify ~= false
end

--- Makes one HTTP/1.1 request (over TLS for https://) and waits for the answer. Returns res
--- (`status`, `headers` with lower-case names, `body`), or nil and why: "timeout",
--- "connection refused", "host not found", "response too large", "certificate verify
--- failed: …", …
function M.request(spec)
  if not core then error("freshet.http.request is only available inside the freshet server", 2) end
  local method, url, headers, body, timeout, ca, verify = read_spec(spec)
  local ok, why = core.can_wait()
  if not ok then error("freshet.http.request: " .. why, 2) end
  local answer, err = core.http_request(method, url, headers, body, timeout or 0, ca, verify)
  if answer == nil then return nil, err end
  return core.http_response(answer)
end

return M
