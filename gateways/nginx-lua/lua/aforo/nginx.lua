-- Aforo for nginx + lua-nginx-module (OpenResty or Debian's libnginx-mod-http-lua).
--
--   init_worker_by_lua_block { require("aforo.nginx").configure{ endpoint = "http://aforo:8000",
--                                token = os.getenv("AFORO_INGEST_TOKEN") } }
--   location / { access_by_lua_block { require("aforo.nginx").access() }
--                log_by_lua_block    { require("aforo.nginx").log() }  proxy_pass ...; }
--
-- access(): gives the request its event id (UUIDv7, at request time) and, with enforce = true,
-- asks POST /api/v1/entitlements/check (cached cache_ttl s) and answers 429 when allow=false.
-- log(): builds the event and hands it to this worker's batching queue; timers send it.
-- Both take an optional table overriding the configuration for one location.

local core = require("aforo.core")
local runner = require("aforo.ngx_runner")

local M = {}

local DEFAULTS = {
  metric = "api_calls",
  quantity = "1",
  api_key_header = "x-api-key",   -- the request header holding the customer's Aforo API key
  customer_id = nil,              -- or a fixed customer id (server-side metering)
  dimension_headers = {},         -- { dimension = "request-header" }
  meter_all_statuses = false,     -- false: meter 1xx–3xx answers only
  enforce = false,                -- access phase: deny with 429 when the check says allow=false
  fail_open = true,               -- Aforo unreachable during a check: let the request through
  cache_ttl = 1,                  -- seconds a check's answer is reused
  check_timeout_ms = 500,
  timeout_ms = 5000,              -- per POST of a batch
  batch_size = 100, flush_interval = 1, max_buffer = 10000,
  backoff_base = 0.5, backoff_max = 30, max_attempts = 0,
  spool_dir = nil,                -- a directory the workers may write: events survive a restart
}

local conf = nil
local gen = core.uuid7_generator()

local function merged(over)
  if not over then return conf end
  local c = setmetatable({}, { __index = conf })
  for k, v in pairs(over) do c[k] = v end
  return c
end

function M.configure(opts)
  conf = {}
  for k, v in pairs(DEFAULTS) do conf[k] = v end
  for k, v in pairs(opts or {}) do conf[k] = v end
  assert(conf.endpoint, "aforo: endpoint is required")
  assert(conf.token, "aforo: token is required (the tenant's ingest token)")
  runner.seed()
  M.queue = runner.queue("default", conf)
  return M.queue
end

local function subject(c)
  if c.customer_id then return { customer_id = c.customer_id } end
  local key = ngx.req.get_headers()[c.api_key_header]
  if type(key) == "table" then key = key[1] end
  if key and key ~= "" then return { api_key = key } end
  return nil
end

local function dimensions(c)
  local dims, headers = {}, nil
  for name, header in pairs(c.dimension_headers) do
    headers = headers or ngx.req.get_headers()
    local v = headers[header]
    if type(v) == "table" then v = v[1] end
    if v and v ~= "" then dims[name] = v end
  end
  return dims
end

local function event_id()
  local ctx = ngx.ctx
  if not ctx.aforo_event_id then ctx.aforo_event_id = gen(ngx.req.start_time() * 1000) end
  return ctx.aforo_event_id
end

function M.access(over)
  local c = merged(over)
  event_id()
  if not c.enforce then return end
  local who = subject(c)
  if not who then return end
  local checker = runner.checker(c.token .. "|" .. tostring(c.fail_open) .. "|" .. tostring(c.cache_ttl), c)
  local allow, answer = checker:check({ api_key = who.api_key, customer_id = who.customer_id, metric = c.metric,
    units = c.quantity, dimensions = dimensions(c) }, runner.now())
  if allow then return end
  ngx.ctx.aforo_denied = true
  ngx.status = 429
  if answer.resets_at then ngx.header["X-Aforo-Resets-At"] = answer.resets_at end
  ngx.header["Content-Type"] = "application/json"
  ngx.say(core.json.encode({ error = { code = answer.reason or "denied",
    message = "Usage limit reached for " .. tostring(c.metric) } }))
  return ngx.exit(429)
end

function M.log(over)
  local c = merged(over)
  if not conf or ngx.ctx.aforo_denied then return end
  local status = ngx.status
  if not c.meter_all_statuses and status >= 400 then return end
  local who = subject(c)
  if not who then return end
  local start = ngx.req.start_time()
  local metadata = {
    gateway = "nginx", method = ngx.req.get_method(), path = ngx.var.uri, status = status,
    latency_ms = math.floor((ngx.now() - start) * 1000 + 0.5), request_id = ngx.var.request_id,
    server = ngx.var.server_name,
  }
  local upstream = tonumber(ngx.var.upstream_response_time or "")
  if upstream then metadata.upstream_latency_ms = math.floor(upstream * 1000 + 0.5) end
  local ev = core.event({
    event_id = event_id(), api_key = who.api_key, customer_id = who.customer_id, metric = c.metric,
    quantity = c.quantity, start_ms = start * 1000, dimensions = dimensions(c), metadata = metadata,
  })
  return runner.enqueue(M.queue, ev)
end

-- Counters of this worker's queue (sent, duplicates, retried, rejected, dropped, queued, failed)
-- and its size, as JSON: for a status location (`content_by_lua_block { require("aforo.nginx").status() }`).
function M.status()
  local q = M.queue
  local m = {}
  for k, v in pairs(q and q.metrics or {}) do m[k] = v end
  m.buffered = q and q:size() or 0
  m.worker_pid = ngx.worker.pid()
  ngx.header["Content-Type"] = "application/json"
  ngx.say(core.json.encode(m))
end

return M
