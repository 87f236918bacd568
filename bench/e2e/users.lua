-- users.lua - wrk: GET /users/<id> over ids 1..N (N from the first script argument, default 200),
-- uniformly at random, so that every worker serves every profile.
local n = 200
function init(args)
  if args[1] then n = tonumber(args[1]) end
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
function request()
  return wrk.format("GET", "/users/" .. math.random(1, n))
end
