import { Counter, Histogram } from 'prom-client';

/**
 * The trigger's series, created once per process at import so the hot path increments them with
 * no lookup (and no dependency of the webhooks module on the metrics module).
 */
export const triggerCalls = new Counter({
  name: 'devpilot_trigger_calls_total',
  help: 'Calls of the public trigger by result code (ACCEPTED, INVALID_TOKEN, IP_NOT_ALLOWED, INVALID_SIGNATURE, RATE_LIMITED, ...)',
  labelNames: ['code'],
});

export const triggerAcceptSeconds = new Histogram({
  name: 'devpilot_trigger_accept_seconds',
  help: 'Time the control plane took to accept a trigger call (receipt of the body to the 202)',
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
});

export const triggerAcceptGroup = new Histogram({
  name: 'devpilot_trigger_accept_group_size',
  help: 'Webhook calls accepted together in one statement (the calls for one server that arrived while its previous accept statement ran)',
  buckets: [1, 2, 5, 10, 25, 50, 100],
});
