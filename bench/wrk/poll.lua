-- wrk script for `POST /poll` (kuaidi100 subscribe) with a fresh tracking number per
-- request, so every request is a new subscription (returnCode 200), not a duplicate.
--
--   wrk -t2 -c256 -d10s -s bench/wrk/poll.lua http://127.0.0.1:18083 -- KEY [PREFIX [random]]
--
-- With `random` the numbers are scattered instead of counting up per thread.
--
-- Prints the returnCode mix at the end (wrk itself only counts HTTP statuses, and the
-- kuaidi100 dialect answers HTTP 200 for every returnCode).

local threads = {}
local counter = 1

function setup(thread)
   thread:set("id", counter)
   table.insert(threads, thread)
   counter = counter + 1
end

local function urlencode(s)
   return (s:gsub("[^%w%-_%.~]", function(c)
      return string.format("%%%02X", string.byte(c))
   end))
end

function init(args)
   key = args[1] or error("usage: -- KEY [PREFIX]")
   prefix = (args[2] or "WK") .. string.format("%02d", id)
   order = args[3] or "sequential"
   n = 0
   codes = {}
   local param = '{"company":"sandbox","number":"XNUMBERX","key":"' .. key ..
      '","parameters":{"callbackurl":"http://93.184.216.34/cb"}}'
   local enc = urlencode(param)
   local at = enc:find("XNUMBERX", 1, true)
   head = "schema=json&param=" .. enc:sub(1, at - 1)
   tail = enc:sub(at + 8)
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
   n = n + 1
   local suffix = n
   if order == "random" then
      -- A bijection of n (odd multiplier modulo 10^10): every number still distinct, but
      -- consecutive requests land far apart in the indexes, as numbers from many
      -- carriers and shops would.
      suffix = (n * 7919 * 104729 + 12345) % 10000000000
   end
   return wrk.format(nil, "/poll", nil, head .. prefix .. string.format("%010d", suffix) .. tail)
end

function response(status, headers, body)
   local code = body:match('"returnCode":"(%d+)"') or ("http" .. status)
   codes[code] = (codes[code] or 0) + 1
end

function done(summary, latency, requests)
   local total = {}
   for _, t in ipairs(threads) do
      local c = t:get("codes")
      for k, v in pairs(c) do
         total[k] = (total[k] or 0) + v
      end
   end
   local secs = summary.duration / 1e6
   for k, v in pairs(total) do
      io.write(string.format("returnCode %s: %d (%.0f/s)\n", k, v, v / secs))
   end
end
