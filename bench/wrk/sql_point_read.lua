-- wrk script for bench/http.sh: POST /v1/sql with one point read by primary key on orders,
-- a random existing order of the tenant each request (ids from bench/pgbench/prepare.sql),
-- the uuid built by the same expression as bench/pgbench/point_read.sql, k as a bound
-- parameter. Env: TG_KEY (tgk_ API key). Prints one machine-readable line at the end.
local key = os.getenv("TG_KEY")
local sql = "SELECT order_id, status, table_no, total, placed_at FROM orders " ..
            "WHERE order_id = ('00000000-0000-4000-9000-' || lpad($1::text, 12, '0'))::uuid"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6) + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0) % 100000)
end

function request()
  local body = '{"sql": "' .. sql .. '", "params": [' .. math.random(1, 10000) .. ']}'
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local non2xx = summary.errors.status
  local errs = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f mean_ms=%.3f requests=%d non2xx=%d socket_errors=%d\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.mean / 1000, summary.requests, non2xx, errs))
end
