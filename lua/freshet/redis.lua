-- freshet.redis: a command on the app's Redis (`redis =` in the app file, else the broker's
-- when that is Redis) from a hook, without holding up the worker: the hook waits, other
-- connections go on.
--
--   local user, err = freshet.redis("GET", "session:" .. sid)
--   if not user then return nil, 503, "sessions: " .. err end
--   if user == freshet.null then return nil, 401, "no such session" end
--
-- Replies: status and bulk strings → strings ("OK"), integers → numbers, a missing value →
-- freshet.null, arrays → tables (an error inside one → { err = "..." }); an error reply →
-- nil, "ERR ...", like a failed call (nil, "timeout" / "connection refused" / ...).
-- Works in auth, topics, tier, publish, message and timers; not in filter (it runs per
-- delivery) nor while the app file loads. Inside freshet.test the stub set with srv:on_redis
-- answers.
local has_core, core = pcall(require, "freshet.core")
if not has_core then core = nil end

-- Commands that would change the one connection every hook of the worker shares (its mode,
-- its database, its transaction) or hold it while they block.
local SHARED = "would change the connection every hook shares"
local BLOCKS = "blocks the connection every hook shares"
local refused = {
  SUBSCRIBE = SHARED, PSUBSCRIBE = SHARED, SSUBSCRIBE = SHARED, UNSUBSCRIBE = SHARED,
  PUNSUBSCRIBE = SHARED, SUNSUBSCRIBE = SHARED, MONITOR = SHARED, SELECT = SHARED,
  AUTH = SHARED, HELLO = SHARED, QUIT = SHARED, RESET = SHARED, MULTI = SHARED,
  EXEC = SHARED, DISCARD = SHARED, WATCH = SHARED, UNWATCH = SHARED, SYNC = SHARED,
  PSYNC = SHARED, CLIENT = SHARED,
  BLPOP = BLOCKS, BRPOP = BLOCKS, BRPOPLPUSH = BLOCKS, BLMOVE = BLOCKS, BLMPOP = BLOCKS,
  BZPOPMIN = BLOCKS, BZPOPMAX = BLOCKS, BZMPOP = BLOCKS, WAIT = BLOCKS, WAITAOF = BLOCKS,
}

--- Sends one command (name, then its arguments: strings or numbers) and waits for the reply.
--- Returns the reply, or nil and why.
local function redis(cmd, ...)
  if not core then error("freshet.redis is only available inside the freshet server", 2) end
  if type(cmd) ~= "string" or cmd == "" then
    error(("freshet.redis: bad argument #1 'command' (a command name expected, got %s)")
      :format(type(cmd) == "string" and "an empty string" or type(cmd)), 2)
  end
  local up = cmd:upper()
  local why = refused[up]
  if why then
    error(("freshet.redis: %s %s; use a Lua script (EVAL) for transactions"):format(up, why), 2)
  end
  local n = select("#", ...)
  local args = { ... }
  for i = 1, n do
    local t = type(args[i])
    if (t ~= "string" and t ~= "number") or args[i] ~= args[i] then
      error(("freshet.redis: bad argument #%d to %s (string or number expected, got %s)")
        :format(i + 1, up, t == "number" and "NaN" or t), 2)
    end
  end
  if up == "XREAD" or up == "XREADGROUP" then
    for i = 1, n do
      if type(args[i]) == "string" and args[i]:upper() == "BLOCK" then
        error(("freshet.redis: %s BLOCK %s"):format(up, BLOCKS), 2)
      end
    end
  end
  local ok, cannot = core.can_wait()
  if not ok then error("freshet.redis: " .. cannot, 2) end
  local answer, err = core.redis(cmd, args, n)
  if answer == nil then return nil, err end
  return core.redis_reply(answer)
end

return redis
