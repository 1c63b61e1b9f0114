-- POST /v1/videos/{id}/like on a different seeded video each request, as several users.
local counter = 0
local tokens = {}
local videos = tonumber(os.getenv("BENCH_VIDEOS") or "100000")

function setup(thread)
  thread:set("offset", math.random(0, videos - 1))
end

function init(args)
  for token in string.gmatch(os.getenv("BENCH_TOKENS") or "", "[^,]+") do
    table.insert(tokens, token)
  end
  counter = offset or 0
end

function request()
  counter = counter + 7919
  local id = string.format("v_bench%06d", counter % videos)
  local token = tokens[(counter % #tokens) + 1]
  return wrk.format("POST", "/v1/videos/" .. id .. "/like",
    {["Authorization"] = "Bearer " .. token, ["Content-Length"] = "0"}, "")
end
