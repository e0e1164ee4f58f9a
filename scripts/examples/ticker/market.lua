-- A made-up market: on every tick each symbol's price takes a small random step. Kept apart
-- from app.lua so that a spec can drive it with a random source of its own.
local symbols = require "symbols"

local M = {}
M.__index = M

local STEP = 0.002 -- the largest move of one tick, as a fraction of the price (0.2 %)

local function cents(x) return math.floor(x * 100 + 0.5) / 100 end

--- A market at the opening prices. opts.random: a function returning numbers in [0, 1)
--- (default math.random); opts.prices: symbol -> price to start from instead (a reload passes
--- the prices it saved, so the ticker does not jump back to the open).
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({ random = opts.random or math.random, price = {} }, M)
  for _, s in ipairs(symbols.list) do
    local saved = opts.prices and opts.prices[s[1]]
    self.price[s[1]] = type(saved) == "number" and saved > 0 and saved or s[2]
  end
  return self
end

--- Moves every price one step; returns the quotes, one per symbol in list order:
--- { symbol, price, change (percent since the open, 2 decimals), at (ms) }.
function M:tick(now)
  local quotes = {}
  for i, s in ipairs(symbols.list) do
    local sym, open = s[1], s[2]
    local p = cents(self.price[sym] * (1 + (self.random() * 2 - 1) * STEP))
    if p < 0.01 then p = 0.01 end
    self.price[sym] = p
    quotes[i] = { symbol = sym, price = p, change = cents((p - open) / open * 100), at = now }
  end
  return quotes
end

return M
