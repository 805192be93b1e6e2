local core = require("aforo.core")
local entitlement = require("aforo.entitlement")
local json = core.json

-- A fake Aforo: answers from a script of responses, records every request.
local function fake(script)
  local f = { requests = {} }
  f.send = function(req)
    f.requests[#f.requests + 1] = req
    local r = table.remove(script, 1)
    if r == nil then r = { status = 202 } end
    if r.err then return nil, r.err end
    if r.status == 202 and not r.body then
      local batch = json.decode(req.body).events
      local results = {}
      for i, ev in ipairs(batch) do results[i] = { index = i - 1, event_id = ev.event_id, status = "accepted" } end
      r = { status = 202, headers = {}, body = json.encode({ results = results }) }
    end
    r.headers = r.headers or {}
    return r
  end
  return f
end

local function ev(n) return core.event({ api_key = "sk_live_x", metric = "api_calls", start_ms = 1764769200000 + n }) end

local function queue(f, opts)
  opts = opts or {}
  opts.endpoint, opts.token, opts.sender = "http://aforo:8000/", "tok", f.send
  opts.random = opts.random or function(a, b) if a then return a end return 0.5 end
  return core.queue(opts)
end

describe("uuid7", function()
  it("is a version 7, variant 10 UUID carrying the millisecond", function()
    local gen = core.uuid7_generator()
    local id = gen(1764769200123)
    assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-7%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", id)
    local ms = tonumber(id:sub(1, 8) .. id:sub(10, 13), 16)
    assert.equals(1764769200123, ms)
  end)
  it("is unique and sorts in call order within one millisecond", function()
    local gen, seen, prev = core.uuid7_generator(), {}, ""
    for _ = 1, 5000 do
      local id = gen(1764769200000)
      assert.is_nil(seen[id]); seen[id] = true
      assert.is_true(id > prev); prev = id
    end
  end)
end)

describe("event building", function()
  it("builds the v1 event with a decimal string quantity and an RFC 3339 timestamp", function()
    local e = core.event({ api_key = "sk_live_a", metric = "tool_calls", quantity = 3, start_ms = 1764769200042,
      dimensions = { tool_name = "generate" }, metadata = { status = 200 } })
    assert.equals("3", e.quantity)
    assert.equals("2025-12-03T13:40:00.042Z", e.timestamp)
    assert.equals("sk_live_a", e.api_key)
    assert.is_nil(e.customer_id)
    assert.equals("generate", e.dimensions.tool_name)
    assert.matches("^%x+%-%x+%-7", e.event_id)
  end)
  it("uses customer_id instead of api_key when given, and keeps a given event id", function()
    local e = core.event({ customer_id = "7", metric = "m", start_ms = 0, event_id = "req-1" })
    assert.equals(7, e.customer_id); assert.is_nil(e.api_key); assert.equals("req-1", e.event_id)
  end)
  it("never emits a float quantity", function()
    assert.equals("1", core.quantity(nil))
    assert.equals("0.25", core.quantity(0.25))
    assert.equals("12", core.quantity("12"))
    assert.equals('{"q":"0.5"}', json.encode({ q = core.quantity(0.5) }))
  end)
end)

describe("batching", function()
  it("flushes by size: a full batch is due at once, in batches of batch_size", function()
    local f = fake({})
    local q = queue(f, { batch_size = 3, flush_interval = 10 })
    q:add(ev(1), 100); q:add(ev(2), 100)
    assert.equals(10, q:due_in(100))
    q:add(ev(3), 100); q:add(ev(4), 100)
    assert.equals(0, q:due_in(100))
    q:pump(100)
    assert.equals(1, #f.requests)
    assert.equals(3, #json.decode(f.requests[1].body).events)
    assert.equals("http://aforo:8000/api/v1/events", f.requests[1].url)
    assert.equals("Bearer tok", f.requests[1].headers.Authorization)
    assert.equals(1, q:size())
  end)
  it("flushes by time: a partial batch waits flush_interval after its oldest event", function()
    local f = fake({})
    local q = queue(f, { batch_size = 100, flush_interval = 1 })
    q:add(ev(1), 100)
    assert.equals(1, q:pump(100)) -- not due: nothing sent, due in 1 s
    assert.equals(0, #f.requests)
    q:add(ev(2), 100.5)
    assert.is_nil(q:pump(101))
    assert.equals(1, #f.requests)
    assert.equals(2, #json.decode(f.requests[1].body).events)
    assert.equals(2, q.metrics.sent)
  end)
  it("drops the newest event when the buffer is full, and counts it", function()
    local q = queue(fake({}), { max_buffer = 2 })
    assert.is_true(q:add(ev(1), 0)); assert.is_true(q:add(ev(2), 0))
    local ok, err = q:add(ev(3), 0)
    assert.is_false(ok); assert.equals("buffer_full", err)
    assert.equals(1, q.metrics.dropped); assert.equals(2, q:size())
  end)
  it("force-flushes a partial batch (shutdown)", function()
    local f = fake({})
    local q = queue(f, { flush_interval = 60 })
    q:add(ev(1), 0)
    q:pump(0, true)
    assert.equals(1, #f.requests); assert.equals(0, q:size())
  end)
end)

describe("retry policy", function()
  it("classifies answers", function()
    assert.equals("retry", core.classify(nil))
    assert.equals("retry", core.classify(429))
    assert.equals("retry", core.classify(503))
    assert.equals("retry", core.classify(500))
    assert.equals("ok", core.classify(202))
    assert.equals("reject", core.classify(400))
    assert.equals("reject", core.classify(401))
    assert.equals("reject", core.classify(413))
  end)
  it("backs off exponentially with jitter, capped", function()
    for attempt = 1, 10 do
      local cap = math.min(30, 0.5 * 2 ^ (attempt - 1))
      assert.equals(cap / 2, core.backoff(attempt, 0.5, 30, function() return 0 end))
      assert.equals(cap, core.backoff(attempt, 0.5, 30, function() return 1 end))
    end
  end)
  it("retries the same batch (same event ids) on network errors and 5xx until delivered", function()
    local f = fake({ { err = "connection refused" }, { status = 503, body = '{"error":{"code":"broker_unavailable"}}' }, { status = 202 } })
    local q = queue(f, { batch_size = 2 })
    q:add(ev(1), 0); q:add(ev(2), 0)
    local wait = q:pump(0)
    assert.equals(1, #f.requests); assert.near(0.375, wait, 1e-9) -- attempt 1: 0.25 + 0.5 * 0.25
    assert.equals(wait, q:pump(0.1) + 0.1) -- not yet: nothing sent
    assert.equals(1, #f.requests)
    q:pump(1); q:pump(5)
    assert.equals(3, #f.requests)
    assert.equals(f.requests[1].body, f.requests[3].body)
    assert.equals(2, q.metrics.retried); assert.equals(2, q.metrics.sent); assert.equals(0, q:size())
  end)
  it("honours Retry-After on 429 (seconds and HTTP date)", function()
    local f = fake({ { status = 429, headers = { ["retry-after"] = "7" } } })
    local q = queue(f)
    q:add(ev(1), 0)
    assert.equals(7, q:pump(0, true))
    assert.equals(7, core.retry_after("Thu, 01 Jan 1970 00:00:17 GMT", 10))
    assert.equals(1764769200 - 1000, core.retry_after("Wed, 03 Dec 2025 13:40:00 GMT", 1000))
    assert.is_nil(core.retry_after("soon", 0))
  end)
  it("never retries a 4xx: the whole batch is reported as rejected", function()
    local seen = {}
    local f = fake({ { status = 401, body = '{"error":{"code":"invalid_credentials","message":"no"}}' } })
    local q = queue(f, { on_rejected = function(e, r) seen[#seen + 1] = { e, r } end })
    q:add(ev(1), 0); q:add(ev(2), 0)
    assert.is_nil(q:pump(0, true))
    assert.equals(1, #f.requests)
    assert.equals(2, #seen); assert.equals("invalid_credentials", seen[1][2].code)
    assert.equals(2, q.metrics.rejected); assert.equals(0, q.metrics.retried)
  end)
  it("surfaces per-event rejections of a 202 (and of a 400 invalid_events)", function()
    local seen = {}
    local f = fake({
      { status = 202, body = json.encode({ results = { { status = "accepted" }, { status = "rejected", code = "invalid_metric", field = "metric" }, { status = "duplicate", reason = "already_received" } } }) },
      { status = 400, body = json.encode({ error = { code = "invalid_events" }, results = { { status = "rejected", code = "negative_quantity" } } }) },
    })
    local q = queue(f, { batch_size = 3, on_rejected = function(e, r) seen[#seen + 1] = r.code end })
    q:add(ev(1), 0); q:add(ev(2), 0); q:add(ev(3), 0)
    q:pump(0)
    q:add(ev(4), 0); q:pump(0, true)
    assert.same({ "invalid_metric", "negative_quantity" }, seen)
    assert.equals(2, q.metrics.sent); assert.equals(1, q.metrics.duplicates); assert.equals(2, q.metrics.rejected)
  end)
  it("gives up after max_attempts when configured (default: never)", function()
    local f = fake({ { status = 500 }, { status = 500 } })
    local failed = 0
    local q = queue(f, { max_attempts = 2, on_rejected = function() failed = failed + 1 end })
    q:add(ev(1), 0)
    q:pump(0, true); q:pump(100)
    assert.equals(1, failed); assert.equals(1, q.metrics.failed); assert.equals(0, q:size())
  end)
end)

describe("spool", function()
  local path
  before_each(function() path = os.tmpname(); os.remove(path) end)
  after_each(function() os.remove(path); os.remove(path .. ".tmp") end)

  local function lines()
    local f = io.open(path); if not f then return 0 end
    local n = 0
    for _ in f:lines() do n = n + 1 end
    f:close(); return n
  end

  it("keeps unsettled events across a restart and delivers them exactly once", function()
    local down = fake({ { err = "refused" }, { err = "refused" } })
    local q1 = queue(down, { batch_size = 2, spool = core.spool(path) })
    local e1, e2, e3 = ev(1), ev(2), ev(3)
    q1:add(e1, 0); q1:add(e2, 0); q1:add(e3, 0)
    q1:pump(0) -- the first batch fails: nothing settled
    assert.equals(3, lines())
    -- the process dies; a new one opens the same spool
    local up = fake({})
    local q2 = queue(up, { batch_size = 10, spool = core.spool(path) })
    assert.equals(3, q2:size()); assert.equals(3, q2.metrics.replayed)
    q2:pump(0, true)
    local sent = json.decode(up.requests[1].body).events
    assert.equals(3, #sent)
    assert.same({ e1.event_id, e2.event_id, e3.event_id }, { sent[1].event_id, sent[2].event_id, sent[3].event_id })
    assert.equals(0, lines()) -- compacted once empty
    assert.equals(0, queue(fake({}), { spool = core.spool(path) }):size())
  end)

  it("replays only what was never settled, and skips a torn last line", function()
    local q = queue(fake({}), { batch_size = 2, spool = core.spool(path) })
    local e3 = ev(3)
    q:add(ev(1), 0); q:add(ev(2), 0); q:add(e3, 0)
    q:pump(0) -- batch of 2 delivered and acknowledged; ev 3 waits
    local f = io.open(path, "a"); f:write('{"e": {"event_id": "torn'); f:close()
    local replayed = core.spool(path):replay()
    assert.equals(1, #replayed); assert.equals(e3.event_id, replayed[1].event_id)
  end)

  it("counts rejected events as settled (never replayed)", function()
    local q = queue(fake({ { status = 400, body = '{"error":{"code":"invalid_events"},"results":[{"status":"rejected","code":"invalid_metric"}]}' } }),
      { spool = core.spool(path) })
    q:add(ev(1), 0); q:pump(0, true)
    assert.equals(0, #core.spool(path):replay())
  end)
end)

describe("entitlement check", function()
  local function checker(script, opts)
    local f = fake(script)
    opts = opts or {}
    opts.endpoint, opts.token, opts.sender = "http://aforo:8000", "tok", f.send
    return entitlement.new(opts), f
  end
  it("asks Aforo and caches the answer for ttl seconds", function()
    local c, f = checker({ { status = 200, body = '{"allow": false, "reason": "limit_reached"}' },
      { status = 200, body = '{"allow": true, "reason": "within_limit"}' } }, { ttl = 1 })
    local req = { api_key = "k", metric = "tool_calls", units = 1, dimensions = { tool_name = "generate" } }
    local allow, answer, cached = c:check(req, 10)
    assert.is_false(allow); assert.equals("limit_reached", answer.reason); assert.is_false(cached)
    local body = json.decode(f.requests[1].body)
    assert.equals("1", body.units); assert.equals("generate", body.dimensions.tool_name)
    allow, answer, cached = c:check(req, 10.9)
    assert.is_false(allow); assert.is_true(cached); assert.equals(1, #f.requests)
    allow = c:check(req, 11.1)
    assert.is_true(allow); assert.equals(2, #f.requests)
  end)
  it("fails open or closed as configured when Aforo cannot answer, without caching", function()
    local c, f = checker({ { err = "refused" }, { status = 503 } })
    assert.is_true((c:check({ api_key = "k", metric = "m" }, 0)))
    assert.is_true((c:check({ api_key = "k", metric = "m" }, 0)))
    assert.equals(2, #f.requests)
    local closed = checker({ { err = "refused" } }, { fail_open = false })
    local allow, answer = closed:check({ api_key = "k", metric = "m" }, 0)
    assert.is_false(allow); assert.equals("check_failed", answer.reason)
  end)
end)
