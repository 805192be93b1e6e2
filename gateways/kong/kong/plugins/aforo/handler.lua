-- Kong plugin: meter every proxied request into Aforo, optionally enforce its limits.
--
-- access: the request's event id (UUIDv7 from the request's start: the same id on every retry),
--         the payer's API key, and with enforce=true the entitlement check (429 on allow=false).
-- log:    the event (route, service, consumer, status, latencies in metadata) into this worker's
--         batching queue; ngx timers POST batches to /api/v1/events, off the request's path.
local core = require("aforo.core")
local runner = require("aforo.ngx_runner")

local AforoHandler = { PRIORITY = 905, VERSION = core.VERSION } -- after auth plugins (key-auth: 1250)

local gen = core.uuid7_generator()

local function api_key(conf)
  local source = conf.api_key_source
  if source == "header" then
    local v = kong.request.get_header(conf.api_key_header)
    return v ~= "" and v or nil
  end
  if source == "credential_key" then
    local credential = kong.client.get_credential()
    return credential and credential.key
  end
  local consumer = kong.client.get_consumer()
  if not consumer then return nil end
  if source == "consumer_username" then return consumer.username end
  if source == "consumer_id" then return consumer.id end
  return consumer.custom_id
end

local function dimensions(conf)
  local dims = {}
  for name, header in pairs(conf.dimension_headers or {}) do
    local v = kong.request.get_header(header)
    if v and v ~= "" then dims[name] = v end
  end
  return dims
end

-- One queue/checker per worker and plugin configuration (__key__ changes when it is edited).
-- With a spool the key must outlive a restart: the plugin instance's id (stable), not __key__.
local function key_of(conf)
  if conf.spool_dir then return conf.__plugin_id or (conf.endpoint .. "|" .. conf.ingest_token) end
  return conf.__key__ or (conf.endpoint .. "|" .. conf.ingest_token .. "|" .. conf.batch_size)
end

local function options(conf)
  return {
    endpoint = conf.endpoint, token = conf.ingest_token, batch_size = conf.batch_size,
    flush_interval = conf.flush_interval, max_buffer = conf.max_buffer, timeout_ms = conf.timeout_ms,
    backoff_base = conf.backoff_base, backoff_max = conf.backoff_max, max_attempts = conf.max_attempts,
    spool_dir = conf.spool_dir, fail_open = conf.fail_open, cache_ttl = conf.cache_ttl, check_timeout_ms = conf.check_timeout_ms,
    on_rejected = function(ev, r)
      kong.log.err("aforo rejected event ", ev.event_id, ": ", r and r.code, " ", r and r.message)
    end,
  }
end

function AforoHandler:init_worker()
  runner.seed()
end

-- This worker's queue for the configuration; opening it replays its spool, if any.
local function queue(conf)
  local key = key_of(conf)
  return runner.queues[key] or runner.queue(key, options(conf))
end

function AforoHandler:access(conf)
  queue(conf)
  local ctx = kong.ctx.plugin
  ctx.event_id = gen(kong.request.get_start_time())
  ctx.api_key = api_key(conf)
  ctx.dimensions = dimensions(conf)
  if not conf.enforce or not ctx.api_key then return end
  local checker = runner.checker(key_of(conf), options(conf))
  local allow, answer = checker:check({ api_key = ctx.api_key, metric = conf.metric, units = conf.quantity,
    dimensions = ctx.dimensions }, runner.now())
  if allow then return end
  ctx.denied = true
  return kong.response.exit(429,
    { error = { code = answer.reason or "denied", message = "Usage limit reached for " .. conf.metric } },
    { ["X-Aforo-Resets-At"] = answer.resets_at })
end

local function latencies()
  local ok, entry = pcall(kong.log.serialize)
  return ok and type(entry) == "table" and entry.latencies or {}
end

function AforoHandler:log(conf)
  local ctx = kong.ctx.plugin
  if ctx.denied then return end
  local status = kong.response.get_status()
  if not conf.meter_all_statuses and status >= 400 then return end
  local key = ctx.api_key or api_key(conf)
  if not key then return end
  local route, service, consumer = kong.router.get_route(), kong.router.get_service(), kong.client.get_consumer()
  local lat = latencies()
  local start = kong.request.get_start_time()
  local ev = core.event({
    event_id = ctx.event_id or gen(start), api_key = key, metric = conf.metric, quantity = conf.quantity,
    start_ms = start, dimensions = ctx.dimensions or dimensions(conf),
    metadata = {
      gateway = "kong", method = kong.request.get_method(), path = kong.request.get_path(), status = status,
      route = route and (route.name or route.id), route_id = route and route.id,
      service = service and (service.name or service.id), service_id = service and service.id,
      consumer_id = consumer and consumer.id,
      latency_ms = lat.request, upstream_latency_ms = lat.proxy, kong_latency_ms = lat.kong,
    },
  })
  runner.enqueue(queue(conf), ev)
end

return AforoHandler
