-- GET wrk's URL as several seeded users (one bearer token per request, round robin).
local tokens = {}
local n = 0

function init(args)
  for token in string.gmatch(os.getenv("BENCH_TOKENS") or "", "[^,]+") do
    table.insert(tokens, token)
  end
end

function request()
  n = n + 1
  local headers = {}
  if #tokens > 0 then
    headers["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1]
  end
  return wrk.format("GET", nil, headers)
end
