-- load.lua - wrk: GET <prefix><id> over ids 1..N (arguments: prefix, N, and optionally a file
-- of "id etag" lines: each request then sends If-None-Match with its id's tag). Counts the
-- statuses seen; done() prints "statuses: 200=N 304=M ...".
local prefix, n, etags = "/cached/", 100, nil
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1] or prefix
  n = tonumber(args[2] or n)
  if args[3] then
    etags = {}
    for line in io.lines(args[3]) do
      local id, tag = line:match("^(%d+) (.*)$")
      if id then etags[tonumber(id)] = tag end
    end
  end
  statuses = {}
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

function request()
  local id = math.random(1, n)
  local headers = {}
  if etags and etags[id] then headers["If-None-Match"] = etags[id] end
  return wrk.format("GET", prefix .. id, headers)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for code, count in pairs(s) do total[code] = (total[code] or 0) + count end
  end
  local parts = {}
  for code, count in pairs(total) do table.insert(parts, code .. "=" .. count) end
  table.sort(parts)
  io.write("statuses: " .. table.concat(parts, " ") .. "\n")
end
