local route = {}

-- GET /sub/a,b,c follows a, b and c. Over WebSocket, {"type":"subscribe","topics":[...]} and
-- "unsubscribe" change the list: the hook gets the change and returns the new list (kept topics
-- first, in their order, so the ids of resumed streams keep meaning the same topics).
function route.topics(req, who, change)
  if change then
    local drop, list, seen = {}, {}, {}
    if change.op == "unsubscribe" then
      for _, t in ipairs(change.topics) do drop[t] = true end
    end
    for _, t in ipairs(change.current) do
      if not drop[t] then list[#list + 1] = t; seen[t] = true end
    end
    if change.op == "subscribe" then
      for _, t in ipairs(change.topics) do
        if type(t) == "string" and not seen[t] then list[#list + 1] = t; seen[t] = true end
      end
    end
    return list
  end
  local topics = {}
  for name in req.params.topics:gmatch("[^,]+") do
    topics[#topics + 1] = name
  end
  return topics
end

return route
