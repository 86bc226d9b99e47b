-- wrk script for bench/proxy.sh: every request carries the next API key of a key file as
-- `X-API-Key`, and the run ends with one machine-readable line.
--
--   wrk -t2 -c64 -d15s --latency -s bench/proxy/keys.lua http://127.0.0.1:PORT/ -- KEYFILE
--
-- KEYFILE: one key per line, or tab-separated lines whose first field is the key (keys.tsv).
-- Each thread starts at a different place in the list and walks through all of it, so every
-- key is used about equally. The requests are built once per thread in init() (wrk.format), so
-- the script costs one table lookup per request.
--
-- The last line of the output is:
--   RESULT requests=N duration_s=S rps=R p50_ms=… p90_ms=… p99_ms=… p999_ms=… max_ms=…
--          bad_status=N connect_errors=N read_errors=N write_errors=N timeouts=N
-- bad_status is wrk's summary.errors.status: the responses with a status of 400 or more.

local threads = {}
local counter = 0

function setup(thread)
   thread:set("thread_index", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local requests = {}
local count = 0
local position = 0

function init(args)
   local file = args[1]
   if file == nil then
      error("keys.lua: pass the key file after --, e.g. -- bench/out/…/keys.tsv")
   end
   local handle = io.open(file, "r")
   if handle == nil then
      error("keys.lua: cannot open " .. file)
   end
   for line in handle:lines() do
      local key = line:match("^([^\t]+)")
      if key ~= nil and key ~= "" then
         count = count + 1
         requests[count] = wrk.format(nil, nil, { ["X-API-Key"] = key })
      end
   end
   handle:close()
   if count == 0 then
      error("keys.lua: no keys in " .. file)
   end
   -- Spread the threads over the list (thread_index is set by setup() before init runs).
   local index = tonumber(thread_index) or 0
   position = (index * 7919) % count
end

function request()
   position = position + 1
   if position > count then
      position = 1
   end
   return requests[position]
end

local function ms(us)
   return string.format("%.3f", us / 1000)
end

function done(summary, latency, _)
   local seconds = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%s p90_ms=%s p99_ms=%s p999_ms=%s max_ms=%s"
         .. " bad_status=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
      summary.requests, seconds, summary.requests / seconds,
      ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
      ms(latency:percentile(99.9)), ms(latency.max),
      e.status, e.connect, e.read, e.write, e.timeout))
end
