-- wrk as closed-loop clients that honour Retry-After, for bench/serve_mode.py.
-- Run with one connection per thread (wrk -tN -cN): every thread has its own Lua state, so each
-- state below is one client. Every answer is timed on the monotonic clock (LuaJIT's ffi); `done`
-- prints one line per answer, "503 <ms>" or "200 <ms>", for the caller to read.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } wrk_timespec;
int clock_gettime(int clk_id, wrk_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local now = ffi.new("wrk_timespec")

local function ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now)
  return tonumber(now.tv_sec) * 1000 + tonumber(now.tv_nsec) / 1e6
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  body = args[1] or '{"question": "why are my pods pending"}'
  answers, sent_at, pause = {}, 0, 0
end

function request()
  sent_at = ms()
  return wrk.format(nil, nil, nil, body)
end

function delay() -- called before every request (0 for the first): the Retry-After just received
  local wait = pause
  pause = 0
  return wait
end

function response(status, headers, _)
  answers[#answers + 1] = string.format("%d %.3f", status, ms() - sent_at)
  if status == 503 then -- header names arrive as the server wrote them (uvicorn: lower case)
    pause = 1000 * (tonumber(headers["retry-after"] or headers["Retry-After"]) or 0)
  end
end

function done()
  for _, thread in ipairs(threads) do
    for _, line in ipairs(thread:get("answers")) do
      io.write(line, "\n")
    end
  end
end
