-- The Kong handler against a test double of Kong's PDK (kong.request, kong.response,
-- kong.client, kong.router, kong.log, kong.ctx) and of the ngx API it uses (timers, clock).
-- Kong itself is not installable here; the double answers what the PDK documents.
local json = require("aforo.core").json

local clock = 1764769200.000
local timers = {}

local function ngx_double()
  return {
    now = function() return clock end,
    update_time = function() end,
    log = function() end, ERR = 4, WARN = 5, NOTICE = 6, INFO = 7,
    md5 = function(s) return (s:gsub("[^%w]", "")):sub(1, 32) end,
    worker = { pid = function() return 4242 end, id = function() return 0 end },
    timer = { at = function(delay, fn, ...) timers[#timers + 1] = { at = clock + delay, fn = fn, args = { ... } }; return true end },
  }
end

-- run the timers that are due (timers may schedule timers)
local function run_timers()
  local ran = true
  while ran do
    ran = false
    for i, t in ipairs(timers) do
      if t.at <= clock then
        table.remove(timers, i)
        t.fn(false, (table.unpack or unpack)(t.args))
        ran = true
        break
      end
    end
  end
end

local function kong_double(req)
  local k = { ctx = { plugin = {} }, exited = nil, logged = {} }
  k.request = {
    get_header = function(name) return req.headers[name:lower()] end,
    get_start_time = function() return req.start_ms end,
    get_method = function() return req.method or "GET" end,
    get_path = function() return req.path or "/v1/search" end,
  }
  k.client = {
    get_consumer = function() return req.consumer end,
    get_credential = function() return req.credential end,
  }
  k.router = {
    get_route = function() return { id = "r-1", name = "search" } end,
    get_service = function() return { id = "s-1", name = "search-svc" } end,
  }
  k.response = {
    get_status = function() return req.status or 200 end,
    exit = function(status, body, headers) k.exited = { status = status, body = body, headers = headers } end,
  }
  k.log = {
    err = function(...) k.logged[#k.logged + 1] = table.concat({ ... }) end,
    serialize = function() return { latencies = { request = 42, proxy = 30, kong = 12 } } end,
  }
  return k
end

local function conf(over)
  local c = {
    endpoint = "http://aforo:8000", ingest_token = "aft_ingest_x", metric = "api_calls", quantity = "1",
    api_key_source = "consumer_custom_id", api_key_header = "x-api-key", dimension_headers = {},
    meter_all_statuses = false, enforce = false, fail_open = true, cache_ttl = 1, check_timeout_ms = 500,
    batch_size = 100, flush_interval = 1, max_buffer = 10000, timeout_ms = 5000,
    backoff_base = 0.5, backoff_max = 30, max_attempts = 0,
  }
  c.__key__ = tostring(c) -- a fresh queue per test, as Kong's plugin cache key would
  for k, v in pairs(over or {}) do c[k] = v end
  return c
end

describe("kong plugin aforo", function()
  local handler, runner, sent, script

  before_each(function()
    _G.ngx = ngx_double()
    timers, sent, script = {}, {}, {}
    package.loaded["aforo.ngx_runner"] = nil
    package.loaded["kong.plugins.aforo.handler"] = nil
    runner = require("aforo.ngx_runner")
    runner.http_send = function(r)
      sent[#sent + 1] = r
      local answer = table.remove(script, 1)
      if answer then
        if answer.err then return nil, answer.err end
        return answer
      end
      if r.url:find("entitlements", 1, true) then
        return { status = 200, headers = {}, body = '{"allow": true, "reason": "no_limit"}' }
      end
      local events = json.decode(r.body).events
      local results = {}
      for i = 1, #events do results[i] = { status = "accepted" } end
      return { status = 202, headers = {}, body = json.encode({ results = results }) }
    end
    handler = require("kong.plugins.aforo.handler")
    handler:init_worker()
  end)

  local function request(c, req)
    req.headers = req.headers or {}
    req.start_ms = req.start_ms or clock * 1000
    _G.kong = kong_double(req)
    handler:access(c)
    if not kong.exited then handler:log(c) end
    return kong
  end

  it("meters in the log phase, off the request path, batched by time", function()
    local c = conf()
    local k = request(c, { consumer = { id = "c-1", username = "acme", custom_id = "sk_live_acme" } })
    local event_id = k.ctx.plugin.event_id
    request(c, { consumer = { id = "c-1", custom_id = "sk_live_acme" }, status = 201 })
    assert.equals(0, #sent) -- nothing sent in the request's phases
    clock = clock + 1.01
    run_timers()
    assert.equals(1, #sent)
    assert.equals("http://aforo:8000/api/v1/events", sent[1].url)
    assert.equals("Bearer aft_ingest_x", sent[1].headers.Authorization)
    local events = json.decode(sent[1].body).events
    assert.equals(2, #events)
    local e = events[1]
    assert.equals(event_id, e.event_id) -- the id made at request time
    assert.matches("^%x+%-%x+%-7%x%x%x%-[89ab]", e.event_id)
    assert.equals("sk_live_acme", e.api_key)
    assert.equals("api_calls", e.metric)
    assert.equals("1", e.quantity)
    assert.equals("search", e.metadata.route); assert.equals("search-svc", e.metadata.service)
    assert.equals(42, e.metadata.latency_ms); assert.equals(30, e.metadata.upstream_latency_ms)
    assert.equals(200, e.metadata.status); assert.equals("kong", e.metadata.gateway)
    assert.equals("c-1", e.metadata.consumer_id)
  end)

  it("sends a full batch at once", function()
    local c = conf({ batch_size = 3 })
    for _ = 1, 3 do request(c, { consumer = { custom_id = "sk_live_acme" } }) end
    run_timers()
    assert.equals(1, #sent)
    assert.equals(3, #json.decode(sent[1].body).events)
  end)

  it("maps the api key from a header, the credential, or the consumer's username", function()
    local c = conf({ api_key_source = "header", api_key_header = "X-Customer-Key", dimension_headers = { region = "x-region" } })
    request(c, { headers = { ["x-customer-key"] = "sk_live_hdr", ["x-region"] = "eu" } })
    request(conf({ api_key_source = "credential_key", __key__ = c.__key__ }), { credential = { key = "sk_live_cred" } })
    request(conf({ api_key_source = "consumer_username", __key__ = c.__key__ }), { consumer = { username = "sk_live_user" } })
    request(c, { headers = {} }) -- no key: not metered
    clock = clock + 2
    run_timers()
    local events = json.decode(sent[1].body).events
    assert.equals(3, #events)
    assert.equals("sk_live_hdr", events[1].api_key); assert.equals("eu", events[1].dimensions.region)
    assert.equals("sk_live_cred", events[2].api_key)
    assert.equals("sk_live_user", events[3].api_key)
  end)

  it("does not meter 4xx/5xx answers unless meter_all_statuses", function()
    request(conf(), { consumer = { custom_id = "k" }, status = 404 })
    request(conf({ meter_all_statuses = true }), { consumer = { custom_id = "k" }, status = 502 })
    clock = clock + 2
    run_timers()
    assert.equals(1, #sent)
    assert.equals(502, json.decode(sent[1].body).events[1].metadata.status)
  end)

  it("retries a failed batch with the same event ids, after a backoff", function()
    script = { { err = "connection refused" }, { status = 503, headers = { ["retry-after"] = "2" }, body = "{}" } }
    local c = conf({ batch_size = 1 })
    request(c, { consumer = { custom_id = "k" } })
    run_timers()
    assert.equals(1, #sent)
    clock = clock + 0.6; run_timers()
    assert.equals(2, #sent)
    clock = clock + 1.5; run_timers()
    assert.equals(2, #sent) -- Retry-After: 2 honoured
    clock = clock + 0.6; run_timers()
    assert.equals(3, #sent)
    assert.equals(sent[1].body, sent[3].body)
    assert.equals(0, #timers)
  end)

  it("logs events Aforo rejects", function()
    script = { { status = 202, headers = {}, body = '{"results":[{"status":"rejected","code":"invalid_api_key","message":"unknown"}]}' } }
    request(conf({ batch_size = 1 }), { consumer = { custom_id = "sk_live_nope" } })
    run_timers()
    assert.matches("invalid_api_key", kong.logged[1])
  end)

  it("with spool_dir, keeps unsent events on disk and sends them after a restart", function()
    local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)
    script = { { err = "connection refused" } }
    local c = conf({ spool_dir = dir, batch_size = 2, __plugin_id = "p1" })
    request(c, { consumer = { custom_id = "sk_live_acme" } })
    request(c, { consumer = { custom_id = "sk_live_acme" } })
    run_timers()
    assert.equals(1, #sent) -- refused: the batch waits, and is on disk
    -- Kong restarts: a new worker, new module state, the same spool
    timers, sent = {}, {}
    package.loaded["aforo.ngx_runner"] = nil
    package.loaded["kong.plugins.aforo.handler"] = nil
    runner = require("aforo.ngx_runner")
    runner.http_send = function(r)
      sent[#sent + 1] = r
      return { status = 202, headers = {}, body = '{"results":[{"status":"accepted"},{"status":"accepted"}]}' }
    end
    handler = require("kong.plugins.aforo.handler")
    request(c, { consumer = { custom_id = "sk_live_acme" }, status = 500 }) -- not metered; opens the queue
    run_timers()
    assert.equals(1, #sent)
    assert.equals(2, #json.decode(sent[1].body).events)
    os.execute("rm -rf " .. dir)
  end)

  describe("enforcement", function()
    it("denies with 429 when the check says allow=false, and does not meter the denied request", function()
      script = { { status = 200, headers = {}, body = '{"allow": false, "reason": "limit_reached", "resets_at": "2027-01-01T00:00:00Z"}' } }
      local c = conf({ enforce = true, metric = "tool_calls", dimension_headers = { tool_name = "x-tool" } })
      local k = request(c, { consumer = { custom_id = "sk_live_globex" }, headers = { ["x-tool"] = "generate" } })
      assert.equals(429, k.exited.status)
      assert.equals("limit_reached", k.exited.body.error.code)
      assert.equals("2027-01-01T00:00:00Z", k.exited.headers["X-Aforo-Resets-At"])
      local check = json.decode(sent[1].body)
      assert.equals("http://aforo:8000/api/v1/entitlements/check", sent[1].url)
      assert.same({ api_key = "sk_live_globex", metric = "tool_calls", units = "1", dimensions = { tool_name = "generate" } }, check)
      handler:log(c) -- Kong still runs the log phase after an exit
      clock = clock + 2; run_timers()
      assert.equals(1, #sent) -- no event
    end)

    it("caches answers for cache_ttl seconds", function()
      script = { { status = 200, headers = {}, body = '{"allow": true, "reason": "within_limit"}' } }
      local c = conf({ enforce = true, flush_interval = 100 })
      request(c, { consumer = { custom_id = "k" } })
      clock = clock + 0.5
      request(c, { consumer = { custom_id = "k" } })
      assert.equals(1, #sent)
      clock = clock + 0.6
      request(c, { consumer = { custom_id = "k" } })
      assert.equals(2, #sent)
    end)

    it("fails open by default and closed when configured", function()
      script = { { err = "timeout" }, { err = "timeout" } }
      local k = request(conf({ enforce = true }), { consumer = { custom_id = "k" } })
      assert.is_nil(k.exited)
      k = request(conf({ enforce = true, fail_open = false }), { consumer = { custom_id = "k" } })
      assert.equals(429, k.exited.status); assert.equals("check_failed", k.exited.body.error.code)
    end)
  end)
end)

describe("kong plugin aforo schema", function()
  it("declares the config with the handler's defaults", function()
    package.loaded["kong.db.schema.typedefs"] = {
      protocols_http = { type = "set" },
      url = function(o) o = o or {}; o.type = "string"; return o end,
      header_name = setmetatable({ type = "string" }, { __call = function(_, o) o.type = "string"; return o end }),
    }
    local schema = require("kong.plugins.aforo.schema")
    assert.equals("aforo", schema.name)
    local fields = {}
    for _, f in ipairs(schema.fields[2].config.fields) do local name, def = next(f); fields[name] = def end
    assert.is_true(fields.endpoint.required); assert.is_true(fields.ingest_token.encrypted)
    assert.equals("api_calls", fields.metric.default)
    assert.equals(100, fields.batch_size.default); assert.same({ 1, 1000 }, fields.batch_size.between)
    assert.is_false(fields.enforce.default); assert.is_true(fields.fail_open.default)
    assert.equals(1, fields.cache_ttl.default)
    assert.equals("x-api-key", fields.api_key_header.default)
  end)
end)
