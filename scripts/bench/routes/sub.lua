local route = {}

function route.topics(req)
  local topics = {}
  for name in req.params.topics:gmatch("[^,]+") do
    topics[#topics + 1] = name
  end
  return topics
end

return route
