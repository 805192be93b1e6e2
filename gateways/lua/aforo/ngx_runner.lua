-- The ngx side shared by the Kong plugin and the nginx integration: an HTTP/1.1 client on
-- cosockets (ngx.socket.tcp; no lua-resty-http needed) and, per nginx worker, the queues of
-- aforo.core pumped by ngx.timer.at — never on the request's path. A log-phase handler only
-- calls enqueue(); the sending happens in timers (cosockets are not allowed in the log phase).

local core = require("aforo.core")
local entitlement = require("aforo.entitlement")

local M = {}
local ngx = ngx

local function now()
  ngx.update_time()
  return ngx.now()
end
M.now = now

------------------------------------------------------------------------------------------------
-- HTTP client: one request, keep-alive pool, Content-Length or chunked answers.

local function read_body(sock, headers)
  local len = tonumber(headers["content-length"])
  if len then return sock:receive(len) end
  if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
    local parts = {}
    while true do
      local line, err = sock:receive("*l")
      if not line then return nil, err end
      local size = tonumber(line:match("^%s*(%x+)"), 16)
      if not size then return nil, "bad chunk" end
      if size == 0 then sock:receive("*l"); break end
      local data, err2 = sock:receive(size)
      if not data then return nil, err2 end
      parts[#parts + 1] = data
      sock:receive("*l")
    end
    return table.concat(parts)
  end
  headers.connection = "close"
  return sock:receive("*a")
end

function M.http_send(req, timeout_ms)
  timeout_ms = timeout_ms or 5000
  local scheme, host, port, path = req.url:match("^(https?)://([^:/]+):?(%d*)(.*)$")
  if not scheme then return nil, "bad url " .. tostring(req.url) end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if path == "" then path = "/" end
  local sock = ngx.socket.tcp()
  sock:settimeouts(timeout_ms, timeout_ms, timeout_ms)
  local ok, err = sock:connect(host, port, { pool = scheme .. ":" .. host .. ":" .. port })
  if not ok then return nil, "connect: " .. tostring(err) end
  if scheme == "https" and sock:getreusedtimes() == 0 then
    ok, err = sock:sslhandshake(nil, host, req.ssl_verify ~= false)
    if not ok then sock:close(); return nil, "tls: " .. tostring(err) end
  end
  local lines = { req.method .. " " .. path .. " HTTP/1.1", "Host: " .. host,
    "Content-Length: " .. #(req.body or ""), "Connection: keep-alive" }
  for k, v in pairs(req.headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  lines[#lines + 1] = ""
  lines[#lines + 1] = req.body or ""
  ok, err = sock:send(table.concat(lines, "\r\n"))
  if not ok then sock:close(); return nil, "send: " .. tostring(err) end
  local status_line
  status_line, err = sock:receive("*l")
  if not status_line then sock:close(); return nil, "receive: " .. tostring(err) end
  local status = tonumber(status_line:match("^HTTP/%d%.%d (%d%d%d)"))
  if not status then sock:close(); return nil, "bad status line" end
  local headers = {}
  while true do
    local line, herr = sock:receive("*l")
    if not line then sock:close(); return nil, "receive: " .. tostring(herr) end
    if line == "" then break end
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k then headers[k:lower()] = v end
  end
  local body
  body, err = read_body(sock, headers)
  if not body then sock:close(); return nil, "receive body: " .. tostring(err) end
  if (headers.connection or ""):lower() == "close" then sock:close() else sock:setkeepalive(60000, 16) end
  return { status = status, headers = headers, body = body }
end

------------------------------------------------------------------------------------------------
-- Per-worker queues, pumped by timers.

local queues, checkers = {}, {}
M.queues, M.checkers = queues, checkers

local function log(level)
  return function(lvl, msg)
    local l = ({ error = ngx.ERR, warn = ngx.WARN })[lvl] or ngx.INFO
    ngx.log(l, "[aforo] ", msg)
  end
end

local schedule

local function tick(premature, q, at)
  if premature then
    -- the worker is exiting: one last attempt to deliver what is held
    q:pump(now, true)
    return
  end
  if at ~= q.timer_at or q.sending then return end -- superseded, or another timer is sending
  q.timer_at = nil
  local next_in = q:pump(now)
  if next_in then schedule(q, next_in) end
end

schedule = function(q, delay)
  local at = now() + delay
  if q.timer_at and q.timer_at <= at + 0.001 then return end -- an earlier timer will do
  q.timer_at = at
  local ok, err = ngx.timer.at(delay, tick, q, at)
  if not ok then
    q.timer_at = nil
    ngx.log(ngx.ERR, "[aforo] cannot schedule a flush: ", err)
  end
end
M.schedule = schedule

-- The queue for one configuration (created on first use in this worker).
-- opts: endpoint, token, batch_size, flush_interval, max_buffer, backoff_base, backoff_max,
-- max_attempts, timeout_ms, on_rejected; spool_dir: keep an on-disk spool there (one file per
-- worker and queue, replayed when the worker starts again).
local function spool_for(key, dir)
  if not dir or dir == "" then return nil end
  local name = ngx.md5(key) -- the key may hold a token: never in a file name
  return core.spool(dir:gsub("/+$", "") .. "/aforo-" .. name .. "-w" .. ngx.worker.id() .. ".spool")
end

function M.queue(key, opts)
  local q = queues[key]
  if not q then
    local timeout = opts.timeout_ms
    q = core.queue({
      spool = spool_for(key, opts.spool_dir), now = now(),
      endpoint = opts.endpoint, token = opts.token,
      sender = function(req) return M.http_send(req, timeout) end,
      batch_size = opts.batch_size, flush_interval = opts.flush_interval, max_buffer = opts.max_buffer,
      backoff_base = opts.backoff_base, backoff_max = opts.backoff_max, max_attempts = opts.max_attempts,
      on_rejected = opts.on_rejected, log = log(),
    })
    queues[key] = q
    if q:size() > 0 then
      ngx.log(ngx.NOTICE, "[aforo] ", q:size(), " events replayed from the spool")
      schedule(q, 0)
    end
  end
  return q
end

-- Log phase: hand one event to the queue and make sure a timer will send it.
function M.enqueue(q, event)
  local t = now()
  local ok, err = q:add(event, t)
  local due = q:due_in(t)
  if due and not q.sending then schedule(q, due) end
  return ok, err
end

function M.checker(key, opts)
  local c = checkers[key]
  if not c then
    local timeout = opts.check_timeout_ms or 500
    c = entitlement.new({
      endpoint = opts.endpoint, token = opts.token, ttl = opts.cache_ttl, fail_open = opts.fail_open,
      sender = function(req) return M.http_send(req, timeout) end, log = log(),
    })
    checkers[key] = c
  end
  return c
end

-- Seed math.random per worker (event ids' random bits).
function M.seed()
  math.randomseed(ngx.now() * 1000 + ngx.worker.pid() * 7919)
end

return M
