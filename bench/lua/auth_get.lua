-- GET wrk's URL as several seeded users (one bearer token per request, round robin), and
-- count the answers by the feed's `source` ("ranked", "ranked+personal" when the page was the
-- viewer's own list, "trending", "following"; "status_NNN" for a non-200): bench/api_bench.py
-- refuses a run whose for-you answers were not all ranked (and personal, with a model).
local tokens = {}
local n = 0
local threads = {}
counts = {} -- global: `done` reads each thread's table with thread:get

function setup(thread)
  table.insert(threads, thread)
end

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

function response(status, headers, body)
  local key
  if status ~= 200 then
    key = "status_" .. status
  else
    -- `source` is FeedOut's last field: the last "source" key in the body is the page's.
    key = body:match('.*"source"%s*:%s*"([%w_-]+)"') or "none"
    -- A ranked page of the viewer's own list (issue 17) says `"personal":true` after it.
    if body:match('"personal"%s*:%s*true%s*}%s*$') then
      key = key .. "+personal"
    end
  end
  counts[key] = (counts[key] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get("counts")) do
      total[key] = (total[key] or 0) + count
    end
  end
  for key, count in pairs(total) do
    io.write(string.format("feed source %s %d\n", key, count))
  end
end
