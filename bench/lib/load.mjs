// HTTP load with autocannon (as a library); latencies kept at full precision by us.
import autocannon from 'autocannon';
import { quantile } from './util.mjs';

const MAX_SAMPLES = 2_000_000;

/**
 * POSTs (or `method`s) `body` with `headers` to `url` on `connections` connections, for `durationS`
 * seconds or `amount` requests. `okStatus` is what counts as success. `onBody(status, body)` sees each response.
 * `rate` (requests per second over all connections) paces the calls instead of sending as fast as answered.
 */
export async function fire({ url, method = 'POST', body, headers, connections, durationS, amount, okStatus, onBody, timeoutS = 30, rate }) {
  const latencies = [];
  const opts = {
    url,
    method,
    body,
    headers,
    connections,
    pipelining: 1,
    timeout: timeoutS,
    ...(amount ? { amount } : { duration: durationS }),
    ...(rate ? { overallRate: rate } : {}),
    ...(onBody ? { requests: [{ method, body, headers, onResponse: (status, b) => onBody(status, b) }] } : {}),
  };
  const start = performance.now();
  let lastResponse = start;
  const instance = autocannon(opts);
  instance.on('response', (_client, _status, _bytes, responseTime) => {
    lastResponse = performance.now();
    if (latencies.length < MAX_SAMPLES) latencies.push(responseTime);
  });
  const r = await instance;
  const byStatus = Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([k, v]) => [k, v.count]));
  const ok = okStatus.reduce((n, s) => n + (byStatus[s] ?? 0), 0);
  const total = Object.values(byStatus).reduce((a, b) => a + b, 0);
  // autocannon notices that `amount` is reached on its 1 s tick: time to the last response instead.
  const elapsedS = amount ? (lastResponse - start) / 1000 : r.duration;
  return {
    durationS: elapsedS,
    ok,
    okPerS: ok / elapsedS,
    total,
    errors: total - ok + r.errors + r.timeouts,
    socketErrors: r.errors,
    timeouts: r.timeouts,
    byStatus,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
  };
}
