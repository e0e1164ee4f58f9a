-- Turns freshet.metrics() into what the dashboard shows: a public part (connection counts) and
-- the full picture, with per-second rates computed from the previous snapshot.
local M = {}
M.__index = M

function M.new()
  return setmetatable({ prev = nil }, M)
end

local function sum3(t) return t.telemetry + t.normal + t.critical end

-- Per-second rate of a counter between two snapshots; nil for the first.
local function rate(now, before, key, dt)
  if not before or dt <= 0 then return nil end
  return math.floor((now[key] - before[key]) / dt * 10 + 0.5) / 10
end

--- m: a freshet.metrics() table; now: ms since the epoch; node: this node's name.
--- Returns public, full (tables ready to publish as JSON).
function M:take(m, now, node)
  local public = { node = node, at = now, connections = m.connections, streams = m.streams }
  local counters = {
    published = sum3(m.published), delivered = m.delivered, dropped = sum3(m.dropped),
  }
  local prev = self.prev
  local dt = prev and (now - prev.at) / 1000 or 0
  local full = {
    node = node, at = now, connections = m.connections, streams = m.streams,
    topics = m.topics, requests = m.requests,
    published = m.published, delivered = m.delivered, dropped = m.dropped,
    conflated = m.conflated, replayed = m.replayed, resumes = m.resumes, resets = m.resets,
    evicted = m.evicted, rate_limited = m.rate_limited, lua_errors = m.lua_errors,
    reloads = m.reloads, uptime = m.uptime, rss = m.rss, broker = m.broker,
    rates = {
      published = rate(counters, prev and prev.counters, "published", dt),
      delivered = rate(counters, prev and prev.counters, "delivered", dt),
      dropped = rate(counters, prev and prev.counters, "dropped", dt),
    },
  }
  self.prev = { at = now, counters = counters }
  return public, full
end

return M
