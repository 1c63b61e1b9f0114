-- GET each of the paths in $BENCH_PATHS (comma-separated) in turn: every request a cached
-- object, as a crowd watching the same video asks for all of its segments.
local paths = {}
local n = 0

function init(args)
  for path in string.gmatch(os.getenv("BENCH_PATHS") or "", "[^,]+") do
    table.insert(paths, path)
  end
end

function request()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1])
end
