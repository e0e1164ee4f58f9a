local route = {}

function route.publish(req, body)
  return {
    topic = req.params.topic,
    data = body,
    event = req.headers["x-event"],
    priority = req.headers["x-priority"],
  }
end

return route
