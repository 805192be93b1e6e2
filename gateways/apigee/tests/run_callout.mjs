// Runs the shared flow's JavaScript callout under Node with a test double of Apigee's objects
// (context, properties, Request, httpClient) for one golden sample; prints what it sent.
import { readFileSync } from "node:fs";
import vm from "node:vm";

const [, , scriptPath, samplePath] = process.argv;
const sample = JSON.parse(readFileSync(samplePath, "utf8"));
const variables = { ...sample.variables };
const sent = [];
const sandbox = {
  properties: sample.properties,
  context: {
    getVariable: (name) => (name in variables ? variables[name] : null),
    setVariable: (name, value) => { variables[name] = value; },
  },
  Request: function (url, method, headers, body) { Object.assign(this, { url, method, headers, body }); },
  httpClient: { send: (request) => { sent.push(request); return { waitForComplete() {}, isSuccess: () => true }; } },
  JSON, Date, Number, String,
};
vm.runInNewContext(readFileSync(scriptPath, "utf8"), sandbox, { filename: "aforo-event.js" });
process.stdout.write(JSON.stringify({
  sent: sent.map((r) => ({ url: r.url, method: r.method, headers: r.headers, body: JSON.parse(r.body) })),
  event_variable: variables["aforo.event"] ?? null,
  skipped: variables["aforo.skipped"] ?? null,
}));
