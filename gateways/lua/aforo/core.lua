-- Aforo metering core for Lua gateways (Kong, nginx + lua-nginx-module / OpenResty).
--
-- Plain Lua (5.1, LuaJIT, 5.2): no Kong, no ngx. Everything with a side effect is injected —
-- the HTTP sender, the clock, the random source, the JSON codec — so the batching, the retry
-- policy and the event building are unit-tested with busted and shared by both gateways.
--
--   local core = require("aforo.core")
--   local q = core.queue({ endpoint = "http://aforo:8000", token = "...", sender = send })
--   q:add(core.event{ api_key = key, metric = "api_calls", start_ms = t0 })
--   q:pump(now)   -- from a timer: sends what is due, returns seconds until the next call
--
-- sender(request) -> response | nil, err
--   request  = { method, url, headers = {...}, body = "..." }
--   response = { status = 202, headers = { ["retry-after"] = "2" } (lower-case), body = "..." }
--   nil, err = a network error (refused, timeout, reset): retried.

local M = { VERSION = "0.1.0" }

local floor, fmt, concat = math.floor, string.format, table.concat

-- JSON: lua-cjson when present (nginx, Kong), dkjson otherwise.
local function load_json()
  local ok, cjson = pcall(require, "cjson.safe")
  if ok then
    return { encode = cjson.encode, decode = cjson.decode }
  end
  local dk = require("dkjson")
  return {
    encode = function(v) return dk.encode(v) end,
    decode = function(s) local v = dk.decode(s); return v end,
  }
end
M.json = load_json()

------------------------------------------------------------------------------------------------
-- UUIDv7 (RFC 9562): 48-bit Unix ms, version 7, 12-bit rand_a used as a per-ms counter
-- (monotonic within one generator), variant 10, 62 random bits.

local function hex(n, width) return fmt("%0" .. width .. "x", n) end

function M.uuid7_generator(random)
  random = random or math.random
  local last_ms, seq = -1, 0
  return function(ms)
    ms = floor(ms)
    if ms <= last_ms then
      ms = last_ms
      seq = seq + 1
      if seq > 0xfff then ms, seq = ms + 1, random(0, 0x3ff) end
    else
      seq = random(0, 0x3ff) -- leaves room to count up within the millisecond
    end
    last_ms = ms
    local hi, lo = floor(ms / 0x10000), ms % 0x10000 -- 32 + 16 bits (doubles are exact to 2^53)
    return concat({
      hex(hi, 8), "-", hex(lo, 4), "-", hex(0x7000 + seq, 4), "-",
      hex(0x8000 + random(0, 0x3fff), 4), "-", hex(random(0, 0xffffff), 6), hex(random(0, 0xffffff), 6),
    })
  end
end

-- RFC 3339 in UTC with milliseconds, from Unix ms.
function M.rfc3339(ms)
  local secs = floor(ms / 1000)
  return os.date("!%Y-%m-%dT%H:%M:%S", secs) .. fmt(".%03dZ", floor(ms - secs * 1000))
end

-- A quantity as the decimal string Aforo wants (never a JSON float).
function M.quantity(q)
  if q == nil then return "1" end
  if type(q) == "string" then return q end
  if q == floor(q) and q >= -2^53 and q <= 2^53 then return fmt("%d", q) end
  local s = fmt("%.12f", q):gsub("0+$", ""):gsub("%.$", "")
  return s
end

------------------------------------------------------------------------------------------------
-- Event building. spec: event_id (made here when absent, with gen), api_key | customer_id,
-- metric, quantity, start_ms (the request's start, Unix ms) or timestamp, dimensions, metadata.

local default_gen = M.uuid7_generator()

function M.event(spec, gen)
  local ev = {
    event_id = spec.event_id or (gen or default_gen)(spec.start_ms),
    metric = spec.metric,
    quantity = M.quantity(spec.quantity),
    timestamp = spec.timestamp or M.rfc3339(spec.start_ms),
    dimensions = spec.dimensions or {},
    metadata = spec.metadata or {},
  }
  if spec.customer_id ~= nil then
    ev.customer_id = tonumber(spec.customer_id) or spec.customer_id
  else
    ev.api_key = spec.api_key
  end
  return ev
end

------------------------------------------------------------------------------------------------
-- Retry policy.

-- Retry-After: delta seconds or an HTTP date; nil when absent or unreadable.
local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }
function M.retry_after(value, now)
  if value == nil then return nil end
  value = tostring(value)
  local secs = tonumber(value:match("^%s*(%d+)%s*$"))
  if secs then return secs end
  local d, mon, y, h, mi, s = value:match("(%d+) (%a+) (%d+) (%d+):(%d+):(%d+) GMT")
  if d and MONTHS[mon] then
    -- days from civil (UTC), no os.time (it is local time)
    local yy, mm = tonumber(y), MONTHS[mon]
    if mm <= 2 then yy = yy - 1 end
    local era = floor(yy / 400)
    local yoe = yy - era * 400
    local doy = floor((153 * (mm + (mm > 2 and -3 or 9)) + 2) / 5) + tonumber(d) - 1
    local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
    local epoch = (era * 146097 + doe - 719468) * 86400 + h * 3600 + mi * 60 + s
    local delta = epoch - (now or 0)
    return delta > 0 and delta or 0
  end
  return nil
end

-- What to do with an answer: "ok" (2xx: per-event results), "retry" (network error, 408, 429,
-- 5xx), "reject" (any other 4xx: the whole batch is refused and never retried).
function M.classify(status)
  if status == nil then return "retry" end
  if status >= 200 and status < 300 then return "ok" end
  if status == 408 or status == 429 or status >= 500 then return "retry" end
  return "reject"
end

-- Exponential backoff with "equal" jitter: half the capped exponential, plus up to that again.
function M.backoff(attempt, base, max, random)
  local cap = math.min(max, base * 2 ^ (attempt - 1))
  return cap / 2 + (random or math.random)() * cap / 2
end

-- The on-disk spool (aforo/spool.lua): opts.spool of a queue.
function M.spool(path, opts) return require("aforo.spool").new(path, opts) end

------------------------------------------------------------------------------------------------
-- The batching queue.

local Queue = {}
Queue.__index = Queue

local DEFAULTS = {
  batch_size = 100,        -- events per POST (Aforo takes up to 1,000)
  flush_interval = 1,      -- seconds an event may wait for a batch to fill
  max_buffer = 10000,      -- events held in memory per worker (in-flight batch included)
  backoff_base = 0.5,      -- seconds
  backoff_max = 30,        -- seconds
  max_attempts = 0,        -- 0: retry a failing batch until it is delivered (what billing wants)
}

function M.queue(opts)
  assert(opts and opts.endpoint, "aforo: endpoint is required")
  assert(opts.sender, "aforo: a sender is required")
  local q = setmetatable({
    url = opts.endpoint:gsub("/+$", "") .. "/api/v1/events",
    token = opts.token,
    sender = opts.sender,
    random = opts.random or math.random,
    json = opts.json or M.json,
    log = opts.log or function() end,
    on_rejected = opts.on_rejected,
    buffer = {}, head = 1, tail = 0,    -- a FIFO of events not yet in a batch
    batch = nil, attempt = 0,           -- the batch in flight or waiting to be retried
    next_attempt = 0, first_at = nil,   -- when the batch may be retried; when the oldest event came
    sending = false,
    metrics = { queued = 0, sent = 0, duplicates = 0, retried = 0, rejected = 0, dropped = 0, failed = 0 },
  }, Queue)
  for k, v in pairs(DEFAULTS) do q[k] = opts[k] or v end
  q.batch_size = math.min(q.batch_size, 1000)
  if opts.spool then
    -- events a previous process queued and never settled: queued again (past max_buffer too)
    q.spool = opts.spool
    local pending = q.spool:replay()
    for _, ev in ipairs(pending) do
      q.tail = q.tail + 1
      q.buffer[q.tail] = ev
    end
    if #pending > 0 then q.first_at = opts.now or 0; q.metrics.replayed = #pending end
    local ok, err = q.spool:compact(pending)
    if not ok then q.log("error", "spool " .. q.spool.path .. " not writable: " .. tostring(err)) end
  end
  return q
end


function Queue:size()
  return (self.tail - self.head + 1) + (self.batch and #self.batch or 0)
end

-- Add one event. Overflow policy: when max_buffer events are held, the NEW event is dropped
-- and counted (metrics.dropped) — the request is never slowed down or failed by metering.
function Queue:add(event, now)
  if self:size() >= self.max_buffer then
    self.metrics.dropped = self.metrics.dropped + 1
    self.log("warn", "buffer full (" .. self.max_buffer .. "): event " .. tostring(event.event_id) .. " dropped")
    return false, "buffer_full"
  end
  if self.spool then
    local ok, err = self.spool:append(event)
    if not ok then self.log("error", "spool write failed: " .. tostring(err)) end
  end
  self.tail = self.tail + 1
  self.buffer[self.tail] = event
  if not self.first_at then self.first_at = now or 0 end
  self.metrics.queued = self.metrics.queued + 1
  return true
end

-- Seconds until pump() has something to do (0: now); nil when idle.
function Queue:due_in(now)
  if self.batch then return math.max(0, self.next_attempt - now) end
  local n = self.tail - self.head + 1
  if n <= 0 then return nil end
  if n >= self.batch_size then return 0 end
  return math.max(0, self.first_at + self.flush_interval - now)
end

function Queue:_take(force)
  local n = self.tail - self.head + 1
  if n <= 0 then return nil end
  local batch = {}
  for i = 1, math.min(n, self.batch_size) do
    batch[i] = self.buffer[self.head]
    self.buffer[self.head] = nil
    self.head = self.head + 1
  end
  if self.head > self.tail then self.head, self.tail, self.first_at = 1, 0, nil end
  return batch
end

function Queue:_reject(batch, results, fallback)
  for i, ev in ipairs(batch) do
    local r = results and results[i] or fallback
    self.metrics.rejected = self.metrics.rejected + 1
    self.log("error", fmt("event %s rejected: %s %s", tostring(ev.event_id), tostring(r and r.code), tostring(r and r.message)))
    if self.on_rejected then pcall(self.on_rejected, ev, r) end
  end
end

-- One POST of the current batch. Returns true when the batch is settled (delivered or refused).
function Queue:_send(now)
  local body = self.json.encode({ events = self.batch })
  local res, err = self.sender({
    method = "POST", url = self.url, body = body,
    headers = {
      ["Authorization"] = "Bearer " .. tostring(self.token),
      ["Content-Type"] = "application/json",
      ["User-Agent"] = "aforo-lua/" .. M.VERSION,
    },
  })
  local status = res and res.status
  local kind = M.classify(status)
  local answer = res and res.body and self.json.decode(res.body) or nil
  if kind == "ok" or (status == 400 and type(answer) == "table" and type(answer.results) == "table") then
    local results = type(answer) == "table" and type(answer.results) == "table" and answer.results or {}
    for i, ev in ipairs(self.batch) do
      local r = results[i]
      local st = r and r.status
      if st == "rejected" then
        self:_reject({ ev }, { r })
      elseif st == "duplicate" then
        self.metrics.duplicates = self.metrics.duplicates + 1
        self.metrics.sent = self.metrics.sent + 1
      else
        self.metrics.sent = self.metrics.sent + 1
      end
    end
    return true
  end
  if kind == "reject" then
    local e = type(answer) == "table" and type(answer.error) == "table" and answer.error or {}
    self:_reject(self.batch, nil, { status = "rejected", code = e.code or ("http_" .. tostring(status)), message = e.message })
    return true
  end
  -- retry: network error, 408, 429, 5xx
  self.attempt = self.attempt + 1
  if self.max_attempts > 0 and self.attempt >= self.max_attempts then
    self.metrics.failed = self.metrics.failed + #self.batch
    self:_reject(self.batch, nil, { status = "failed", code = "retries_exhausted", message = tostring(err or status) })
    return true
  end
  self.metrics.retried = self.metrics.retried + 1
  local delay = M.backoff(self.attempt, self.backoff_base, self.backoff_max, self.random)
  local ra = res and res.headers and M.retry_after(res.headers["retry-after"], now)
  if ra and ra > delay then delay = math.min(ra, self.backoff_max * 4) end
  self.next_attempt = now + delay
  self.log("warn", fmt("batch of %d not delivered (%s), attempt %d, retry in %.2f s",
    #self.batch, tostring(err or status), self.attempt, delay))
  return false
end

function Queue:_settled()
  local spool = self.spool
  if not spool then return end
  local ids = {}
  for i, ev in ipairs(self.batch) do ids[i] = ev.event_id end
  spool:ack(ids)
  if self.head > self.tail then
    spool:compact({})
  elseif spool.acked >= spool.compact_every then
    local rest = {}
    for i = self.head, self.tail do rest[#rest + 1] = self.buffer[i] end
    spool:compact(rest)
  end
end

-- Send what is due. now() is called again after each send (sending takes time).
-- force: send a partial batch now and ignore the backoff (shutdown).
-- Returns seconds until the next call is useful (nil: idle).
function Queue:pump(now_fn, force)
  if type(now_fn) == "number" then local t = now_fn; now_fn = function() return t end end
  if self.sending then return self:due_in(now_fn()) end
  self.sending = true
  local ok, err = pcall(function()
    while true do
      local now = now_fn()
      local due = self:due_in(now)
      if due == nil or (due > 0 and not force) then break end
      if not self.batch then self.batch, self.attempt = self:_take(), 0 end
      if self:_send(now) then
        self:_settled()
        self.batch, self.attempt, self.next_attempt = nil, 0, 0
      elseif force then
        break
      end
    end
  end)
  self.sending = false
  if not ok then self.log("error", "pump failed: " .. tostring(err)) end
  return self:due_in(now_fn())
end

M.Queue = Queue
return M
