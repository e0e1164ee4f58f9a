-- GET /prices?symbols=DORC,KUB,... — live prices of the symbols asked for (24 by default, at
-- most 64: a stream follows up to 64 topics), one `price` event per symbol per tick:
--
--   event: price
--   data: {"symbol":"DORC","price":40.91,"change":0.12,"at":1732176000000.1}
--
-- Over WebSocket the watchlist can change on the open connection:
-- {"type":"subscribe","topics":["price:NOB"]} / {"type":"unsubscribe",...}.
local symbols = require "symbols"

local route = {}

-- The newest price of a symbol replaces one still waiting to be written to a slow reader:
-- it never gets a backlog, only the latest of each symbol. (telemetry events are also the
-- first to be dropped when a stream is over its budget.)
route.on_slow = "conflate"

-- Coming back with an id older than the short replay window is not worth a 416: start from
-- the latest prices, with a `reset` event first.
route.on_gap = "reset"

local MAX = 64
local DEFAULT = {}
for i = 1, 24 do DEFAULT[i] = "price:" .. symbols.list[i][1] end

-- "DORC,kub" -> { "price:DORC", "price:KUB" }, or nil and what is wrong.
local function watchlist(text)
  local topics, seen = {}, {}
  for sym in text:gmatch("[^,]+") do
    sym = sym:upper()
    if not symbols.open[sym] then return nil, "unknown symbol '" .. sym .. "'" end
    if not seen[sym] then
      seen[sym] = true
      topics[#topics + 1] = "price:" .. sym
    end
  end
  if #topics == 0 then return nil, "symbols must name at least one symbol" end
  if #topics > MAX then return nil, ("at most %d symbols per stream, got %d"):format(MAX, #topics) end
  return topics
end

-- Anyone may watch; auth only checks the watchlist, since topics cannot refuse a request.
function route.auth(req)
  local text = req.query.symbols
  local topics, problem = DEFAULT, nil
  if text and text ~= "" then topics, problem = watchlist(text) end
  if not topics then return nil, 400, problem end
  req.watchlist = topics
  return {}
end

local function known_topic(t)
  local sym = type(t) == "string" and t:match("^price:(.+)$")
  return sym and symbols.open[sym] ~= nil
end

function route.topics(req, who, change)
  if not change then return req.watchlist end
  -- A WebSocket client changes its watchlist. Unknown topics and asks beyond 64 are ignored,
  -- and the last symbol stays: a stream always follows at least one topic.
  local list, has = {}, {}
  local drop = {}
  if change.op == "unsubscribe" then
    for _, t in ipairs(change.topics) do drop[t] = true end
  end
  for _, t in ipairs(change.current) do
    if not drop[t] then
      list[#list + 1] = t
      has[t] = true
    end
  end
  if change.op == "subscribe" then
    for _, t in ipairs(change.topics) do
      if #list < MAX and known_topic(t) and not has[t] then
        list[#list + 1] = t
        has[t] = true
      end
    end
  end
  if #list == 0 then return change.current end
  return list
end

return route
