/*
 * Aforo metering for Apigee: builds the usage event of the call that just finished and sends it
 * to Aforo's ingest API without waiting for the answer (httpClient.send is fire-and-forget, so
 * the proxy's response is not delayed). Attach the shared flow to the Post-proxy flow hook.
 *
 * Reads: flow variables (messageid, the API key, timings, status, proxy and path) and the
 * policy's properties (aforo.url, aforo.token, aforo.metric, aforo.api_key_variable).
 * Writes: aforo.event (the JSON sent) and aforo.skipped (why nothing was sent), for Trace.
 */
(function () {
  var url = properties["aforo.url"];
  var token = properties["aforo.token"];
  var metric = properties["aforo.metric"] || "api_calls";
  var keyVariable = properties["aforo.api_key_variable"] || "request.header.x-api-key";

  var apiKey = context.getVariable(keyVariable) || context.getVariable("client_id");
  if (!apiKey) {
    context.setVariable("aforo.skipped", "no API key on the request");
    return;
  }
  var started = Number(context.getVariable("client.received.start.timestamp"));
  var ended = Number(context.getVariable("system.timestamp")) || started;
  var status = Number(context.getVariable("response.status.code"));
  var metadata = { gateway: "apigee" };
  var proxy = context.getVariable("apiproxy.name");
  if (proxy) metadata.proxy = proxy;
  var path = context.getVariable("proxy.pathsuffix");
  if (path) metadata.path = path;
  var verb = context.getVariable("request.verb");
  if (verb) metadata.method = verb;
  if (status) metadata.status = status;
  if (started && ended >= started) metadata.latency_ms = ended - started;
  var environment = context.getVariable("environment.name");
  if (environment) metadata.environment = environment;

  var event = {
    // messageid is unique per call: a retried send is deduplicated by Aforo, never billed twice
    event_id: "apigee-" + context.getVariable("messageid"),
    api_key: String(apiKey),
    metric: metric,
    quantity: "1",
    timestamp: new Date(started || Date.now()).toISOString(),
    metadata: metadata
  };
  var body = JSON.stringify(event);
  context.setVariable("aforo.event", body);
  var request = new Request(url.replace(/\/$/, "") + "/api/v1/events", "POST",
    { "Content-Type": "application/json", "Authorization": "Bearer " + token }, body);
  httpClient.send(request);
})();
