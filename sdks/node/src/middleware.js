// Express middleware and a Fastify plugin that meter every request carrying an API key. The
// event is built and buffered after the response is finished (Express: the response's 'finish';
// Fastify: the onResponse hook), so metering adds no I/O to the request's critical path: only
// one listener registration per request.
import { performance } from 'node:perf_hooks';

/**
 * @param {import('../index').MeteringOptions} options
 * @returns {(req: any, res: any, durationMs: number, route: string | undefined) => object | null}
 */
function eventBuilder({
  apiKey = (req) => req.headers['x-api-key'],
  customerId,
  metric = 'api_calls',
  quantity = '1',
  dimensions,
  metadata,
  skip,
}) {
  return (req, res, durationMs, route) => {
    if (skip?.(req, res)) return null;
    const customer = customerId?.(req, res);
    const key = customer == null ? apiKey(req, res) : undefined;
    if (customer == null && !key) return null; // nobody to bill
    return {
      ...(customer != null ? { customerId: customer } : { apiKey: key }),
      metric: typeof metric === 'function' ? metric(req, res) : metric,
      quantity: typeof quantity === 'function' ? quantity(req, res) : quantity,
      dimensions: dimensions ? dimensions(req, res) : {},
      metadata: metadata
        ? metadata(req, res)
        : { method: req.method, route: route ?? null, status: res.statusCode, duration_ms: Math.round(durationMs * 1000) / 1000 },
    };
  };
}

function recordSafely(client, build, onError, req, res, durationMs, route) {
  try {
    const event = build(req, res, durationMs, route);
    if (event) client.record(event);
  } catch (error) {
    // Metering must never break the app: a failing option callback is reported, not thrown.
    (onError ?? client.options.onError ?? ((e) => console.warn(`aforo: metering failed: ${e.message}`)))(error);
  }
}

/**
 * Express (and Connect-style) middleware: `app.use(aforoExpress(client, { metric: 'api_calls' }))`.
 * @param {import('./client.js').AforoClient} client
 * @param {import('../index').MeteringOptions} [options]
 */
export function aforoExpress(client, options = {}) {
  const build = eventBuilder(options);
  return function aforoMetering(req, res, next) {
    const started = performance.now();
    res.once('finish', () => {
      const route = req.route?.path != null ? (req.baseUrl ?? '') + req.route.path : undefined;
      recordSafely(client, build, options.onError, req, res, performance.now() - started, route);
    });
    next();
  };
}

/**
 * Fastify plugin: `app.register(aforoFastify, { client, metric: 'api_calls' })`. Its hook applies
 * to the whole instance it is registered on (it is not encapsulated, as fastify-plugin would do).
 * @param {any} fastify
 * @param {import('../index').MeteringOptions & {client: import('./client.js').AforoClient}} options
 */
export function aforoFastify(fastify, options, done) {
  const { client } = options;
  if (!client) throw new TypeError('aforoFastify needs the `client` option');
  const build = eventBuilder(options);
  fastify.addHook('onResponse', (request, reply, hookDone) => {
    recordSafely(client, build, options.onError, request, reply, reply.elapsedTime ?? 0, request.routeOptions?.url);
    hookDone();
  });
  done();
}
aforoFastify[Symbol.for('skip-override')] = true;
aforoFastify[Symbol.for('fastify.display-name')] = 'aforo';
